#include <span>
#include <string>
#include <vector>

#include "voxprint/audio.h"
#include "voxprint/error.h"

namespace voxprint {

std::vector<float> DownmixToMono(std::span<const float> interleaved,
                                 int channels) {
  if (channels <= 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "DownmixToMono: channels must be positive, got " +
                    std::to_string(channels));
  }
  if (interleaved.size() % static_cast<size_t>(channels) != 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "DownmixToMono: " + std::to_string(interleaved.size()) +
                    " samples is not a multiple of " +
                    std::to_string(channels) + " channels");
  }
  const size_t frames = interleaved.size() / static_cast<size_t>(channels);
  if (channels == 1) return {interleaved.begin(), interleaved.end()};
  std::vector<float> mono(frames);
  // torch's mean(dim=0) on CPU is a float32 sum over the channels in order,
  // then one float32 division by the count (not a multiply by 1/count).
  const float count = static_cast<float>(channels);
  for (size_t i = 0; i < frames; ++i) {
    const float* frame = interleaved.data() + i * channels;
    float sum = frame[0];
    for (int c = 1; c < channels; ++c) sum += frame[c];
    mono[i] = sum / count;
  }
  return mono;
}

}  // namespace voxprint
