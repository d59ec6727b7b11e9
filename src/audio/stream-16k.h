// An input decoded and resampled to 16 kHz block by block (internal): what
// LoadAudio16k returns, in pieces, so that a pass over a long input holds a
// block at a time.
#pragma once

#include <memory>
#include <vector>

#include "audio/stream-decoder.h"
#include "audio/streaming-resampler.h"
#include "voxprint/audio.h"

namespace voxprint::audio {

class Stream16k {
 public:
  explicit Stream16k(std::unique_ptr<StreamDecoder> decoder);

  // Appends the next 16 kHz samples to *out (possibly none, while the
  // resampler fills); false once the input has ended and all was given.
  bool Next(std::vector<float>* out);
  // The original stream's description; frames is complete at the end.
  AudioInfo Info() const;

 private:
  std::unique_ptr<StreamDecoder> decoder_;
  std::unique_ptr<StreamingResampler> resampler_;
  std::vector<float> decoded_;
  bool ended_ = false;
};

}  // namespace voxprint::audio
