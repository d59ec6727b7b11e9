// Voice activity detection: which parts of a recording hold speech.
//
// The detector runs Silero VAD v5 (MIT; the `silero_vad_v5.onnx` that npm
// packages such as @ricky0123/vad-web ship) with voxprint's own code: the
// weights of the file's 16 kHz branch are read from the ONNX graph, every
// shape is checked, and the small network (an STFT done as a convolution,
// four convolutions, an LSTM of 128 and a 1x1 convolution with a sigmoid) is
// computed in plain C++. Its probabilities agree with ONNX Runtime running
// the same file to better than 1e-4.
//
// Segments are made from the probabilities by the rules of Silero's
// get_speech_timestamps (thresholds with hysteresis, minimum speech and
// silence, padding), with every boundary kept in samples.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "voxprint/audio.h"
#include "voxprint/cancel.h"

namespace voxprint {

// The network reads 16 kHz audio in chunks of this many new samples, each
// with the 64 samples before it as context; it gives one probability per
// chunk (32 ms).
inline constexpr int kVadChunkSamples = 512;
inline constexpr int kVadContextSamples = 64;
inline constexpr int kVadSampleRateHz = 16000;

// How probabilities become segments (Silero's get_speech_timestamps).
struct VadOptions {
  // A chunk whose probability is at or above this starts (or continues)
  // speech.
  double threshold = 0.5;
  // Speech ends only where probabilities fall below this (the exit
  // threshold). Unset: max(threshold - 0.15, 0.01), i.e. 0.35 by default.
  std::optional<double> neg_threshold;
  // Speech shorter than this is dropped.
  double min_speech_ms = 250.0;
  // Silence must last this long before it ends a segment.
  double min_silence_ms = 100.0;
  // Each segment grows by this much on both sides; where two segments are
  // closer than twice this, the gap is split between them.
  double speech_pad_ms = 30.0;

  // The exit threshold actually used.
  double NegThreshold() const;
  // Throws Error(kInvalidArgument) naming the option when a value is out of
  // range: thresholds must satisfy 0 <= neg_threshold <= threshold <= 1,
  // durations must be finite and >= 0.
  void Validate() const;
  // "threshold=0.5 neg_threshold=0.35 min_speech_ms=250 ..."
  std::string ToString() const;
};

// One stretch of speech, [start_sample, end_sample) at 16 kHz.
struct SpeechSegment {
  int64_t start_sample = 0;
  int64_t end_sample = 0;
  double StartSeconds() const {
    return static_cast<double>(start_sample) / kVadSampleRateHz;
  }
  double EndSeconds() const {
    return static_cast<double>(end_sample) / kVadSampleRateHz;
  }
  bool operator==(const SpeechSegment&) const = default;
};

// Segments from per-chunk probabilities (probability i covers samples
// [512 i, 512 (i + 1))) of audio `total_samples` long, by
// get_speech_timestamps' rules:
// - speech starts at the first chunk whose probability >= threshold;
// - once in speech, the first chunk below neg_threshold marks a possible
//   end; a chunk >= threshold cancels it; the segment ends there once
//   min_silence_ms have passed since it (measured at chunk starts);
// - a segment not longer than min_speech_ms is dropped; speech still open
//   at the end of the audio ends at `total_samples` (if long enough);
// - padding: the first start moves back by speech_pad_ms, the last end
//   forward (clamped to the audio); between two segments, a gap shorter
//   than 2 * speech_pad_ms is split in half (floor) between them, otherwise
//   both sides move by speech_pad_ms.
// Validates `options` (kInvalidArgument). Pure function; thread-safe.
std::vector<SpeechSegment> SegmentsFromProbabilities(
    std::span<const float> probabilities, int64_t total_samples,
    const VadOptions& options = {});

// The speech of a whole input (VoiceActivityDetector::SpeechOfFile).
struct FileSpeech {
  AudioInfo audio;          // of the original stream
  int64_t samples_16k = 0;  // its length once at 16 kHz
  std::vector<SpeechSegment> segments;
};

// Where the Silero VAD v5 file is, in this order: `explicit_path` (the
// --vad-model flag) when not empty, $VOXPRINT_VAD_MODEL when set, the npm
// install in the source tree this build came from
// (models/vad/node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx), then
// the installed copy (<prefix>/share/voxprint/silero_vad_v5.onnx). An
// explicit path or variable is returned as given (loading reports it if it
// is missing). Throws Error(kModelError) naming the places looked at and how
// to fill one when none of the defaults exists.
std::string FindVadModel(const std::string& explicit_path = "");

// Silero VAD v5, loaded once and then shared: every call keeps its own
// recurrent state, so one detector serves concurrent calls from any number
// of threads.
class VoiceActivityDetector {
 public:
  // Reads and checks the model file. Throws kIoError when it cannot be read
  // and kModelError, as "<path>: <reason>", when it is missing, not ONNX, or
  // not Silero VAD v5 (a graph or weight shape that differs).
  // `num_threads` is how many threads each call (Probabilities,
  // SpeechSegments, a ProbabilityStream) may use: 1 runs on the calling
  // thread only; with more, other threads encode blocks of chunks while the
  // calling one runs the recurrent part (about twice as fast with 2; more
  // than 4 gain nothing); 0 means one per core (as BackendOptions). The
  // results are the same for any count. kInvalidArgument when negative.
  explicit VoiceActivityDetector(const std::string& model_path,
                                 int num_threads = 1);
  // Same, from the file's bytes; `name` is used in messages.
  VoiceActivityDetector(std::span<const uint8_t> model_bytes,
                        const std::string& name, int num_threads = 1);
  ~VoiceActivityDetector();
  VoiceActivityDetector(VoiceActivityDetector&&) noexcept;
  VoiceActivityDetector& operator=(VoiceActivityDetector&&) noexcept;

  // One speech probability in [0, 1] per 512-sample chunk of mono 16 kHz
  // audio (ceil(n / 512) values; the last chunk is zero-padded), computed
  // as Silero's wrapper does: state and context start at zero and carry from
  // chunk to chunk. `cancel` is checked between blocks of chunks
  // (kCancelled).
  std::vector<float> Probabilities(std::span<const float> samples_16k,
                                   const CancelToken& cancel = {}) const;

  // Probabilities, then SegmentsFromProbabilities.
  std::vector<SpeechSegment> SpeechSegments(
      std::span<const float> samples_16k, const VadOptions& options = {},
      const CancelToken& cancel = {}) const;

  // The speech of an audio file in any format and at any rate, decoded,
  // resampled and run block by block: memory stays bounded whatever the
  // length (the probabilities, 4 bytes per 32 ms, are all that is kept),
  // with the segments SpeechSegments gives on LoadAudio16k(path). Errors as
  // LoadAudio16k's (the path in the message), kCancelled.
  FileSpeech SpeechOfFile(const std::string& path,
                          const VadOptions& options = {},
                          const AudioLimits& limits = {},
                          const CancelToken& cancel = {}) const;

  // The path or name the model was loaded from.
  const std::string& source() const;
  // The threads a call may use (0 given: the number of cores).
  int num_threads() const;

  // Probabilities of audio given in pieces (a long file decoded block by
  // block): Push(a), Push(b), Finish() append exactly Probabilities(a ++ b).
  // The detector must outlive the stream; one stream per thread.
  class ProbabilityStream {
   public:
    explicit ProbabilityStream(const VoiceActivityDetector& detector);
    ~ProbabilityStream();
    // Appends the probabilities of complete 512-sample chunks, several
    // seconds at a time: small pushes are gathered so that the network
    // works on large blocks (the rest waits for more audio or Finish).
    void Push(std::span<const float> samples_16k, std::vector<float>* out);
    // Appends the remaining chunks', the last partial one zero-padded.
    void Finish(std::vector<float>* out);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
  };

 private:
  struct Model;
  std::shared_ptr<const Model> model_;
};

}  // namespace voxprint
