#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "audio/sinc-kernel.h"
#include "voxprint/audio.h"
#include "voxprint/error.h"

namespace voxprint {

std::vector<float> Resample(std::span<const float> samples, int from_hz,
                            int to_hz) {
  if (from_hz <= 0 || to_hz <= 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "resample: sample rates must be positive, got " +
                    std::to_string(from_hz) + " -> " + std::to_string(to_hz));
  }
  if (from_hz == to_hz) return {samples.begin(), samples.end()};
  const std::shared_ptr<const audio::SincKernel> kernel =
      audio::CachedSincKernel(from_hz, to_hz);
  const int64_t orig = kernel->orig_rate;
  const int64_t new_rate = kernel->new_rate;
  const int64_t n = static_cast<int64_t>(samples.size());
  // ceil(new * n / orig) without overflowing new * n.
  const int64_t length =
      (n / orig) * new_rate + ((n % orig) * new_rate + orig - 1) / orig;
  std::vector<float> out(static_cast<size_t>(length));

  const float* x = samples.data();
  const float* taps = kernel->taps.data();
  for (int64_t k = 0; k < length; ++k) {
    const int64_t frame = k / new_rate;
    const int64_t phase = k % new_rate;
    const int64_t tap_begin = kernel->offsets[phase];
    const int64_t count = kernel->offsets[phase + 1] - tap_begin;
    // Position in the unpadded input of the phase's first stored tap.
    const int64_t start = frame * orig + kernel->first_tap[phase] -
                          kernel->width;
    const float* w = taps + tap_begin;
    // Double accumulation: the exact sum rounded once, which lands within
    // float32 rounding of torch's conv1d whatever order it sums in.
    double sum = 0.0;
    if (start >= 0 && start + count <= n) {
      const float* in = x + start;
      double partial[4] = {0.0, 0.0, 0.0, 0.0};
      int64_t i = 0;
      for (; i + 4 <= count; i += 4) {
        partial[0] += static_cast<double>(w[i]) * in[i];
        partial[1] += static_cast<double>(w[i + 1]) * in[i + 1];
        partial[2] += static_cast<double>(w[i + 2]) * in[i + 2];
        partial[3] += static_cast<double>(w[i + 3]) * in[i + 3];
      }
      for (; i < count; ++i) partial[0] += static_cast<double>(w[i]) * in[i];
      sum = (partial[0] + partial[1]) + (partial[2] + partial[3]);
    } else {
      // Edges: taps over the zero padding contribute nothing.
      for (int64_t i = 0; i < count; ++i) {
        const int64_t p = start + i;
        if (p >= 0 && p < n) sum += static_cast<double>(w[i]) * x[p];
      }
    }
    out[static_cast<size_t>(k)] = static_cast<float>(sum);
  }
  return out;
}

}  // namespace voxprint
