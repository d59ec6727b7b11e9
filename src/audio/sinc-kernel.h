// The polyphase windowed-sinc kernel of torchaudio.functional.resample
// (internal; exposed for tests).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace voxprint::audio {

// torchaudio's kernel is a dense [new_rate][2 * width + orig_rate] float32
// matrix applied with stride orig_rate to the input padded by `width` zeros on
// the left. Outside about 2 * 6 / rolloff input periods per phase its taps
// all hold one value of about 1e-24 (the Hann window clamped at its zero),
// so only the span between them is kept.
struct SincKernel {
  int orig_rate = 0;  // input rate divided by gcd
  int new_rate = 0;   // output rate divided by gcd
  int width = 0;      // zero padding on the left, in input samples
  // Phase j (output sample k with k % new_rate == j) reads the padded input
  // from position first_tap[j] on, with taps[offsets[j] .. offsets[j + 1]).
  std::vector<int64_t> first_tap;
  std::vector<int64_t> offsets;
  std::vector<float> taps;
  // The value of every tap left out (~1e-24; 0 when nothing was left out).
  float clamped_tap = 0.0f;
  int64_t DenseColumns() const { return 2 * int64_t{width} + orig_rate; }
};

// Builds the kernel for `from_hz` -> `to_hz` (both > 0), bit-identical to
// torchaudio 0.13's _get_sinc_resample_kernel with sinc_interp_hann,
// lowpass_filter_width 6 and rolloff 0.99. Throws kInvalidArgument when the
// ratio would need an unreasonably large kernel.
SincKernel BuildSincKernel(int from_hz, int to_hz);

// Same, from a small process-wide cache (thread-safe).
std::shared_ptr<const SincKernel> CachedSincKernel(int from_hz, int to_hz);

// The dense matrix torchaudio uses, row-major [new_rate][DenseColumns()].
std::vector<float> DenseSincKernel(const SincKernel& kernel);

}  // namespace voxprint::audio
