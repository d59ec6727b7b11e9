#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "audio/streaming-resampler.h"
#include "voxprint/audio.h"

namespace voxprint {

// One implementation serves both forms: the whole signal is streamed through
// the resampler in blocks, which bounds the resampler's own copy of the input
// (StreamingResampler documents the torch-exact summation it reproduces).
std::vector<float> Resample(std::span<const float> samples, int from_hz,
                            int to_hz) {
  constexpr size_t kBlockSamples = size_t{1} << 20;
  audio::StreamingResampler resampler(from_hz, to_hz);
  std::vector<float> out;
  out.reserve(static_cast<size_t>(
      static_cast<double>(samples.size()) * to_hz / from_hz + 2));
  for (size_t first = 0; first < samples.size(); first += kBlockSamples)
    resampler.Push(
        samples.subspan(first, std::min(kBlockSamples, samples.size() - first)),
        &out);
  resampler.Finish(&out);
  return out;
}

}  // namespace voxprint
