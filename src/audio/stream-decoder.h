// Pull-based decoding (internal): the same mono samples as DecodeAudioFile /
// DecodeAudioBytes, handed out block by block so that memory stays bounded
// whatever the length of the input.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "voxprint/audio.h"
#include "voxprint/cancel.h"

namespace voxprint::audio {

// Not thread-safe; one per pass over an input. Throws voxprint::Error with
// the same codes and messages as DecodeAudioFile.
class StreamDecoder {
 public:
  // Opens the input and reads its header (no samples yet).
  static std::unique_ptr<StreamDecoder> OpenFile(const std::string& path,
                                                 const AudioLimits& limits);
  // `bytes` must outlive the decoder.
  static std::unique_ptr<StreamDecoder> OpenBytes(
      std::span<const uint8_t> bytes, const std::string& name,
      const AudioLimits& limits);
  ~StreamDecoder();
  StreamDecoder(const StreamDecoder&) = delete;
  StreamDecoder& operator=(const StreamDecoder&) = delete;

  // The decoding loops (DecodeAll16k*, Next) stop with kCancelled at their
  // next block once `cancel` is cancelled: a long decode (a compressed file
  // that expands to the sample limit) must not outlive its request.
  void SetCancel(CancelToken cancel);

  // Duration the container header states, in seconds; 0 when unknown.
  double HeaderDurationSeconds() const;

  // The whole input at once, exactly what DecodeAudioFile/DecodeAudioBytes
  // return; only before any call to Next(). Lets a caller that opened the
  // input to read its header go on without opening it again.
  DecodedAudio DecodeAll();

  // The whole input at 16 kHz: exactly Resample(DecodeAll().mono, rate,
  // kModelSampleRateHz), but decoded and resampled block by block, so the
  // signal at its original rate is never held (a 384 kHz input needs 24
  // times less memory). Only before any call to Next().
  Audio16k DecodeAll16k();
  // The same, unless the input turns out to be longer than
  // `max_samples_16k` at 16 kHz (> 0): then it stops there and returns
  // nothing, so that a caller can take a bounded-memory path for an input
  // whose header did not say how long it is.
  std::optional<Audio16k> DecodeAll16kUnlessLonger(int64_t max_samples_16k);

  // Replaces *out with the next mono samples (at SampleRateHz()); false,
  // with *out empty, at the end. Blocks are a packet or so long.
  bool Next(std::vector<float>* out);

  // The rate of the samples Next() gives: the stream's first decoded rate
  // (later runs at other rates are resampled to it, as DecodeAudio* does).
  // Known once Next() has returned true.
  int SampleRateHz() const;

  // What DecodeAudio* would report in DecodedAudio::info; frames is complete
  // once Next() has returned false.
  AudioInfo Info() const;

  struct Impl;

 private:
  explicit StreamDecoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace voxprint::audio
