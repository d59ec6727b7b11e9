#include "audio/stream-16k.h"

#include <utility>

namespace voxprint::audio {

Stream16k::Stream16k(std::unique_ptr<StreamDecoder> decoder)
    : decoder_(std::move(decoder)) {}

bool Stream16k::Next(std::vector<float>* out) {
  if (ended_) return false;
  if (decoder_->Next(&decoded_)) {
    // The rate is known once the first block is decoded.
    if (!resampler_)
      resampler_ = std::make_unique<StreamingResampler>(
          decoder_->SampleRateHz(), kModelSampleRateHz);
    resampler_->Push(decoded_, out);
  } else {
    if (resampler_) resampler_->Finish(out);
    ended_ = true;
  }
  return true;
}

AudioInfo Stream16k::Info() const { return decoder_->Info(); }

}  // namespace voxprint::audio
