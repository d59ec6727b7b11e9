#include "audio/streaming-resampler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "audio/sinc-kernel.h"
#include "voxprint/error.h"

namespace voxprint::audio {
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
//
// Every output is one float32 chain over its taps in
// increasing order (skipping taps over the zero padding), with fused
// multiply-adds when the padded input reaches torch's oneDNN threshold and a
// product-then-sum otherwise. Each output depends only on the input and its
// index, so computing it block by block changes nothing.
constexpr int64_t kLanes = 8;
constexpr int64_t kTorchMkldnnMinPaddedLength = 20481;

// Frames [f_begin, f_end) of every phase, output k only when k < k_limit.
struct Block {
  const SincKernel* kernel;
  const float* buffer;  // input sample p is buffer[p - buffer_start]
  int64_t buffer_start;
  int64_t n;  // input samples known (all of them at the end)
  int64_t f_begin;
  int64_t f_end;
  int64_t k_limit;
  float* y;  // output k goes to y[k - f_begin * new_rate]
};

template <typename Fma>
[[gnu::always_inline]] inline void ApplyBlock(const Block& b, Fma fma) {
  const SincKernel& kernel = *b.kernel;
  const int64_t orig = kernel.orig_rate;
  const int64_t new_rate = kernel.new_rate;
  const float* x = b.buffer - b.buffer_start;  // absolute indexing
  const int64_t y_base = b.f_begin * new_rate;
  for (int64_t phase = 0; phase < new_rate; ++phase) {
    if (b.f_begin * new_rate + phase >= b.k_limit) break;
    const float* taps = kernel.taps.data() + kernel.offsets[phase];
    const int64_t count = kernel.offsets[phase + 1] - kernel.offsets[phase];
    const int64_t offset = kernel.first_tap[phase] - kernel.width;
    // Frames whose output of this phase is below k_limit.
    const int64_t f_stop =
        std::min(b.f_end, (b.k_limit - phase + new_rate - 1) / new_rate);
    int64_t f = b.f_begin;
    while (f < f_stop) {
      const int64_t start = f * orig + offset;
      const bool inside = start >= 0 && f + kLanes <= f_stop &&
                          start + (kLanes - 1) * orig + count <= b.n;
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
          b.y[(f + lane) * new_rate + phase - y_base] = acc[lane];
        }
        f += kLanes;
      } else {
        float acc = 0.0f;
        for (int64_t i = 0; i < count; ++i) {
          const int64_t p = start + i;
          if (p >= 0 && p < b.n) acc = fma(taps[i], x[p], acc);
        }
        b.y[f * new_rate + phase - y_base] = acc;
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
[[gnu::target("fma")]] void ApplyFusedWithFmaInstructions(const Block& b) {
  ApplyBlock(b, InstructionFma{});
}
void ApplyFused(const Block& b) {
  static const bool has_fma = __builtin_cpu_supports("fma");
  if (has_fma) {
    ApplyFusedWithFmaInstructions(b);
  } else {
    ApplyBlock(b, LibraryFma{});
  }
}
#else
void ApplyFused(const Block& b) { ApplyBlock(b, LibraryFma{}); }
#endif

// ceil(new * n / orig) without overflowing new * n (as Resample()).
int64_t OutputLength(int64_t n, int64_t orig, int64_t new_rate) {
  return (n / orig) * new_rate + ((n % orig) * new_rate + orig - 1) / orig;
}

}  // namespace

StreamingResampler::StreamingResampler(int from_hz, int to_hz) {
  if (from_hz <= 0 || to_hz <= 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "resample: sample rates must be positive, got " +
                    std::to_string(from_hz) + " -> " + std::to_string(to_hz));
  }
  if (from_hz == to_hz) {
    copy_ = true;
    return;
  }
  kernel_ = CachedSincKernel(from_hz, to_hz);
  const SincKernel& k = *kernel_;
  reach_ = 0;
  lead_ = 0;
  for (int j = 0; j < k.new_rate; ++j) {
    const int64_t first = k.first_tap[j] - k.width;
    const int64_t count = k.offsets[j + 1] - k.offsets[j];
    if (j == 0 || first < lead_) lead_ = first;
    reach_ = std::max(reach_, first + count);
  }
  fused_min_input_ =
      kTorchMkldnnMinPaddedLength - 2 * int64_t{k.width} - k.orig_rate;
}

StreamingResampler::~StreamingResampler() = default;

void StreamingResampler::Push(std::span<const float> input,
                              std::vector<float>* out) {
  if (finished_)
    throw Error(ErrorCode::kInvalidArgument,
                "streaming resampler: input after the end");
  if (copy_) {
    out->insert(out->end(), input.begin(), input.end());
    total_in_ += static_cast<int64_t>(input.size());
    return;
  }
  buffer_.insert(buffer_.end(), input.begin(), input.end());
  total_in_ += static_cast<int64_t>(input.size());
  Emit(false, out);
}

void StreamingResampler::Finish(std::vector<float>* out) {
  if (finished_)
    throw Error(ErrorCode::kInvalidArgument,
                "streaming resampler: finished twice");
  finished_ = true;
  if (copy_) return;
  Emit(true, out);
  buffer_.clear();
  buffer_.shrink_to_fit();
}

void StreamingResampler::Emit(bool finished, std::vector<float>* out) {
  if (!decided_) {
    if (total_in_ >= fused_min_input_) {
      decided_ = fused_ = true;
    } else if (finished) {
      decided_ = true;
      fused_ = false;
    } else {
      return;
    }
  }
  const SincKernel& k = *kernel_;
  const int64_t orig = k.orig_rate;
  const int64_t new_rate = k.new_rate;
  // Outputs below this index exist whatever input follows.
  const int64_t k_limit = OutputLength(total_in_, orig, new_rate);
  int64_t f_end = (k_limit + new_rate - 1) / new_rate;
  if (!finished) {
    // Whole frames only, and only those whose inputs have all arrived.
    f_end = std::min(k_limit / new_rate,
                     total_in_ >= reach_ ? (total_in_ - reach_) / orig + 1 : 0);
  }
  if (f_end > next_frame_) {
    const int64_t first_k = next_frame_ * new_rate;
    const int64_t last_k = std::min(f_end * new_rate, k_limit);
    const size_t base = out->size();
    out->resize(base + static_cast<size_t>(last_k - first_k));
    const Block block{&k,        buffer_.data(),    buffer_start_,
                      total_in_, next_frame_,       f_end,
                      k_limit,   out->data() + base};
    if (fused_) {
      ApplyFused(block);
    } else {
      ApplyBlock(block, MultiplyAdd{});
    }
    next_frame_ = f_end;
  }
  // Input before the first one the next frame reads is no longer needed.
  const int64_t keep_from =
      std::min(total_in_, std::max<int64_t>(0, next_frame_ * orig + lead_));
  if (keep_from > buffer_start_) {
    buffer_.erase(
        buffer_.begin(),
        buffer_.begin() + static_cast<ptrdiff_t>(keep_from - buffer_start_));
    buffer_start_ = keep_from;
  }
}

}  // namespace voxprint::audio
