// The arithmetic of Silero VAD's network, compiled once per instruction set
// (silero-kernels-*.cc) and picked at run time.
//
// Every output row is computed by the same instructions in the same order
// whatever the number of rows, the row's place in the block, or the thread:
// the probabilities of a chunk never depend on how the audio was cut into
// blocks (Run and Stream agree exactly).
#pragma once

#include <cstddef>

namespace voxprint::vad {

// One term of a GemmJob's sum: rows of `a` (row r at a + r * lda, `depth`
// values) times `w` ([depth][GemmJob::cols], rows ldw apart).
struct GemmSegment {
  const float* a;
  std::ptrdiff_t lda;
  const float* w;
  int depth;
};

// out[r][n] = bias[n] + sum over segments s, k < depth_s of
// a_s[r][k] * w_s[k][n], then max(., 0) when relu; the sum runs in that
// order (segments, then k). cols is a multiple of kGemmColumnAlign.
struct GemmJob {
  const GemmSegment* segments;
  int num_segments;
  int rows;
  int cols;
  std::ptrdiff_t ldw;
  const float* bias;
  bool relu;
  float* out;
  std::ptrdiff_t ldc;
};

inline constexpr int kGemmColumnAlign = 16;
inline constexpr int kLstmGates = 4 * 128;

struct SileroKernels {
  const char* name;  // "avx512", "avx2" or "portable"
  void (*gemm)(const GemmJob& job);
  // One LSTM step of hidden size 128 (PyTorch gate order i, f, g, o):
  // gates = pre_gates + w_hh_t^T h (w_hh_t is [128][512]), then c and h are
  // updated in place. Returns the head's logit, head_bias + head_weight .
  // relu(h). `gates` is 512 floats of scratch.
  float (*lstm_step)(const float* pre_gates, const float* w_hh_t,
                     const float* head_weight, float head_bias, float* h,
                     float* c, float* gates);
  // Magnitudes of 256-point DFTs by FFT: for each of `frames` frames (frame
  // f at x + f * stride), out[f * out_stride + b] = |sum_k x[k] window[k]
  // e^(-2 pi i b k / 256)| for the 129 bins b. `twiddles` holds
  // cos(2 pi m / 256) for m <= 128, then sin(2 pi m / 256); `scratch` holds
  // kFftScratchFloats.
  void (*stft_magnitude)(const float* x, std::ptrdiff_t stride, int frames,
                         const float* window, const float* twiddles, float* out,
                         std::ptrdiff_t out_stride, float* scratch);
};

inline constexpr int kFftSize = 256;
inline constexpr int kFftScratchFloats = kFftSize * 16;

// The fastest set this CPU runs.
const SileroKernels& BestSileroKernels();
// Every set this CPU runs, fastest first (for tests).
int AvailableSileroKernels(const SileroKernels** out, int capacity);

}  // namespace voxprint::vad
