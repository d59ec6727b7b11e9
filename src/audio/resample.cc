#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "audio/sinc-kernel.h"
#include "voxprint/audio.h"
#include "voxprint/error.h"

namespace voxprint {
namespace {

// torch computes the strided conv1d one of two ways, each summing every
// output as a chain over the kernel columns in increasing order, in float32:
//  - oneDNN when the padded input is longer than 20480 samples (torch's
//    use_mkldnn rule for one batch, one channel and a 1-row kernel): a chain
//    of fused multiply-adds;
//  - otherwise im2col + the reference BLAS sgemm: a product, then a sum.
// Doing the same gives torchaudio's output bit for bit wherever our kernel
// taps equal torch's (all but ~0.5% of them, see sinc-kernel.cc). Outputs of
// one phase in consecutive frames use the same taps, so kLanes of them run
// side by side: independent chains keep the FMA units busy while each chain
// keeps its own order.
constexpr int64_t kLanes = 8;
constexpr int64_t kTorchMkldnnMinPaddedLength = 20481;

struct Plan {
  const audio::SincKernel* kernel;
  const float* x;
  int64_t n;
  float* y;
  int64_t length;
};

template <typename Fma>
[[gnu::always_inline]] inline void ApplyKernel(const Plan& plan, Fma fma) {
  const audio::SincKernel& kernel = *plan.kernel;
  const int64_t orig = kernel.orig_rate;
  const int64_t new_rate = kernel.new_rate;
  const float* x = plan.x;
  const int64_t n = plan.n;
  for (int64_t phase = 0; phase < new_rate && phase < plan.length; ++phase) {
    const float* taps = kernel.taps.data() + kernel.offsets[phase];
    const int64_t count = kernel.offsets[phase + 1] - kernel.offsets[phase];
    // Input index read by tap i of frame f: f * orig + offset + i.
    const int64_t offset = kernel.first_tap[phase] - kernel.width;
    const int64_t frames = (plan.length - phase + new_rate - 1) / new_rate;
    int64_t f = 0;
    while (f < frames) {
      const int64_t start = f * orig + offset;
      const bool inside = start >= 0 && f + kLanes <= frames &&
                          start + (kLanes - 1) * orig + count <= n;
      if (inside) {
        float acc[kLanes] = {};
        const float* in = x + start;
        for (int64_t i = 0; i < count; ++i) {
          const float w = taps[i];
          for (int64_t lane = 0; lane < kLanes; ++lane) {
            acc[lane] = fma(w, in[lane * orig + i], acc[lane]);
          }
        }
        for (int64_t lane = 0; lane < kLanes; ++lane) {
          plan.y[(f + lane) * new_rate + phase] = acc[lane];
        }
        f += kLanes;
      } else {
        // Near the edges: taps over the zero padding leave the sum as is.
        float acc = 0.0f;
        for (int64_t i = 0; i < count; ++i) {
          const int64_t p = start + i;
          if (p >= 0 && p < n) acc = fma(taps[i], x[p], acc);
        }
        plan.y[f * new_rate + phase] = acc;
        ++f;
      }
    }
  }
}

struct LibraryFma {
  float operator()(float a, float b, float c) const {
    return std::fma(a, b, c);
  }
};
struct MultiplyAdd {
  float operator()(float a, float b, float c) const {
    // Two statements: compilers may fuse a * b + c within one expression.
    const float product = a * b;
    return c + product;
  }
};

// Without -mfma, std::fma is a library call on x86-64; a clone compiled for
// FMA hardware makes it one instruction. Other targets have FMA as baseline.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
struct InstructionFma {
  [[gnu::always_inline]] float operator()(float a, float b, float c) const {
    return __builtin_fmaf(a, b, c);
  }
};
[[gnu::target("fma")]] void ApplyFusedWithFmaInstructions(const Plan& plan) {
  ApplyKernel(plan, InstructionFma{});
}
void ApplyFused(const Plan& plan) {
  static const bool has_fma = __builtin_cpu_supports("fma");
  if (has_fma) {
    ApplyFusedWithFmaInstructions(plan);
  } else {
    ApplyKernel(plan, LibraryFma{});
  }
}
#else
void ApplyFused(const Plan& plan) { ApplyKernel(plan, LibraryFma{}); }
#endif

void Apply(const Plan& plan) {
  const audio::SincKernel& kernel = *plan.kernel;
  const int64_t padded = plan.n + 2 * int64_t{kernel.width} + kernel.orig_rate;
  if (padded >= kTorchMkldnnMinPaddedLength) {
    ApplyFused(plan);
  } else {
    ApplyKernel(plan, MultiplyAdd{});
  }
}

}  // namespace

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
  Apply(Plan{kernel.get(), samples.data(), n, out.data(), length});
  return out;
}

}  // namespace voxprint
