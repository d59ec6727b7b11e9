// The kernels of silero-kernels.h, written once with GCC vector extensions
// and compiled per instruction set: each silero-kernels-<isa>.cc defines
//   VOXPRINT_VAD_VECTOR_BYTES   the vector width (64, 32 or 16 bytes)
//   VOXPRINT_VAD_GEMM_ROWS      rows of one GEMM register tile
//   VOXPRINT_VAD_GEMM_VECTORS   vectors (of columns) of one tile
//   VOXPRINT_VAD_KERNELS_NAME   the set's name
//   VOXPRINT_VAD_KERNELS_GETTER the function that returns the set
// then includes this file. Everything here has internal linkage and uses no
// inline function of a library: code built with -mavx512f must not stand in
// for another file's copy of the same function.
//
// Sums run in one fixed order per output value (no reassociation), and
// every vector lane does the same as the others, so results never depend on
// which lane, row or tile a value is in.

#include <cstddef>

#include "vad/silero-kernels.h"

namespace voxprint::vad {
namespace {

constexpr int kVectorBytes = VOXPRINT_VAD_VECTOR_BYTES;
constexpr int kLanes = kVectorBytes / static_cast<int>(sizeof(float));
constexpr int kTileRows = VOXPRINT_VAD_GEMM_ROWS;
constexpr int kTileVectors = VOXPRINT_VAD_GEMM_VECTORS;
static_assert(kGemmColumnAlign % kLanes == 0);

typedef float Vec __attribute__((vector_size(kVectorBytes)));
typedef int IntVec __attribute__((vector_size(kVectorBytes)));

inline Vec Load(const float* p) {
  Vec v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

inline void Store(float* p, Vec v) { __builtin_memcpy(p, &v, sizeof v); }

inline Vec Splat(float x) { return Vec{} + x; }

inline Vec Bits(IntVec v) {
  Vec out;
  __builtin_memcpy(&out, &v, sizeof out);
  return out;
}

inline IntVec Bits(Vec v) {
  IntVec out;
  __builtin_memcpy(&out, &v, sizeof out);
  return out;
}

// a where `mask` lanes are all ones, else b.
inline Vec Select(IntVec mask, Vec a, Vec b) {
  return Bits((mask & Bits(a)) | (~mask & Bits(b)));
}

inline Vec Relu(Vec x) { return Select(x > Splat(0.0f), x, Splat(0.0f)); }

// e^x to about one ulp for x in [-87, 88] (clamped there): 2^n e^r with
// n = round(x / ln 2) and |r| <= ln 2 / 2, e^r by its Taylor series to r^7
// (truncation error < 4e-9).
inline Vec Exp(Vec x) {
  x = Select(x < Splat(88.0f), x, Splat(88.0f));
  x = Select(x > Splat(-87.0f), x, Splat(-87.0f));
  // Adding 1.5 * 2^23 rounds to an integer, held in the low mantissa bits.
  const Vec kRound = Splat(12582912.0f);
  const Vec shifted = x * Splat(1.44269504088896341f) + kRound;
  const Vec n = shifted - kRound;
  const Vec r =
      (x - n * Splat(0.693145751953125f)) - n * Splat(1.42860682030941723e-06f);
  Vec p = Splat(1.0f / 5040.0f);
  p = p * r + Splat(1.0f / 720.0f);
  p = p * r + Splat(1.0f / 120.0f);
  p = p * r + Splat(1.0f / 24.0f);
  p = p * r + Splat(1.0f / 6.0f);
  p = p * r + Splat(0.5f);
  p = p * r + Splat(1.0f);
  p = p * r + Splat(1.0f);
  const IntVec exponent = (Bits(shifted) - Bits(kRound)) + 127;
  return p * Bits(exponent << 23);
}

inline Vec Sigmoid(Vec x) { return Splat(1.0f) / (Splat(1.0f) + Exp(-x)); }

inline Vec Tanh(Vec x) {
  return Splat(1.0f) - Splat(2.0f) / (Exp(x + x) + Splat(1.0f));
}

// One register tile: `Rows` rows from m0, `Vectors` vectors of columns from
// n0.
template <int Rows, int Vectors>
void GemmTile(const GemmJob& job, int m0, int n0) {
  Vec acc[Rows][Vectors];
#pragma GCC unroll 8
  for (int v = 0; v < Vectors; ++v) {
    const Vec bias = Load(job.bias + n0 + v * kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) acc[r][v] = bias;
  }
  for (int s = 0; s < job.num_segments; ++s) {
    const GemmSegment& segment = job.segments[s];
    const float* a = segment.a + m0 * segment.lda;
    const float* w = segment.w + n0;
    for (int k = 0; k < segment.depth; ++k) {
      Vec wk[Vectors];
#pragma GCC unroll 8
      for (int v = 0; v < Vectors; ++v)
        wk[v] = Load(w + k * job.ldw + v * kLanes);
#pragma GCC unroll 8
      for (int r = 0; r < Rows; ++r) {
        const Vec ar = Splat(a[r * segment.lda + k]);
#pragma GCC unroll 8
        for (int v = 0; v < Vectors; ++v) acc[r][v] += ar * wk[v];
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
    float* out = job.out + (m0 + r) * job.ldc + n0;
#pragma GCC unroll 8
    for (int v = 0; v < Vectors; ++v)
      Store(out + v * kLanes, job.relu ? Relu(acc[r][v]) : acc[r][v]);
  }
}

template <int Rows, int Vectors>
void GemmTileColumnsUpTo(const GemmJob& job, int m0, int n0, int vectors) {
  if constexpr (Vectors > 1) {
    if (vectors < Vectors) {
      GemmTileColumnsUpTo<Rows, Vectors - 1>(job, m0, n0, vectors);
      return;
    }
  }
  GemmTile<Rows, Vectors>(job, m0, n0);
}

template <int Rows>
void GemmTileRowsUpTo(const GemmJob& job, int m0, int n0, int rows,
                      int vectors) {
  if constexpr (Rows > 1) {
    if (rows < Rows) {
      GemmTileRowsUpTo<Rows - 1>(job, m0, n0, rows, vectors);
      return;
    }
  }
  GemmTileColumnsUpTo<Rows, kTileVectors>(job, m0, n0, vectors);
}

void Gemm(const GemmJob& job) {
  constexpr int kTileColumns = kTileVectors * kLanes;
  for (int n0 = 0; n0 < job.cols; n0 += kTileColumns) {
    const int vectors =
        (job.cols - n0 < kTileColumns ? job.cols - n0 : kTileColumns) / kLanes;
    for (int m0 = 0; m0 < job.rows; m0 += kTileRows) {
      const int rows = job.rows - m0 < kTileRows ? job.rows - m0 : kTileRows;
      GemmTileRowsUpTo<kTileRows>(job, m0, n0, rows, vectors);
    }
  }
}

float LstmStep(const float* pre_gates, const float* w_hh_t,
               const float* head_weight, float head_bias, float* h, float* c,
               float* gates) {
  constexpr int kHidden = kLstmGates / 4;
  // gates = pre_gates + w_hh_t^T h, as many vectors of columns at a time as
  // leave a register for h[i] (32 registers with AVX-512, else 16).
  constexpr int kVectors = kVectorBytes == 64 ? 16 : 8;
  constexpr int kColumns = kVectors * kLanes;
  static_assert(kLstmGates % kColumns == 0);
  for (int n0 = 0; n0 < kLstmGates; n0 += kColumns) {
    Vec acc[kVectors];
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v)
      acc[v] = Load(pre_gates + n0 + v * kLanes);
    for (int i = 0; i < kHidden; ++i) {
      const Vec hi = Splat(h[i]);
      const float* w = w_hh_t + i * kLstmGates + n0;
#pragma GCC unroll 16
      for (int v = 0; v < kVectors; ++v) acc[v] += hi * Load(w + v * kLanes);
    }
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) Store(gates + n0 + v * kLanes, acc[v]);
  }
  Vec logit = Splat(0.0f);
  for (int j = 0; j < kHidden; j += kLanes) {
    const Vec in = Sigmoid(Load(gates + j));
    const Vec forget = Sigmoid(Load(gates + kHidden + j));
    const Vec cell = Tanh(Load(gates + 2 * kHidden + j));
    const Vec out = Sigmoid(Load(gates + 3 * kHidden + j));
    const Vec c_new = forget * Load(c + j) + in * cell;
    const Vec h_new = out * Tanh(c_new);
    Store(c + j, c_new);
    Store(h + j, h_new);
    logit += Load(head_weight + j) * Relu(h_new);
  }
  float sum = head_bias;
  for (int lane = 0; lane < kLanes; ++lane) sum += logit[lane];
  return sum;
}

// Bit reversal of a 7-bit index.
constexpr int Reverse7(int k) {
  int r = 0;
  for (int bit = 0; bit < 7; ++bit) r |= ((k >> bit) & 1) << (6 - bit);
  return r;
}

// The 256-point DFT of real x through one 128-point complex FFT of
// z[m] = x[2m] + i x[2m+1] (radix 2, decimation in time), kLanes frames at
// once (one per lane): with A = Z[k] and B = conj(Z[128 - k]), the even
// samples' DFT is E = (A + B) / 2, the odd ones' O = (A - B) / 2i, and
// X[k] = E + e^(-2 pi i k / 256) O.
void StftMagnitude(const float* x, std::ptrdiff_t stride, int frames,
                   const float* window, const float* twiddles, float* out,
                   std::ptrdiff_t out_stride, float* scratch) {
  constexpr int kHalf = kFftSize / 2;  // 128 points, and bins 0..128
  const float* cos_table = twiddles;
  const float* sin_table = twiddles + kHalf + 1;
  float* real = scratch;
  float* imag = scratch + kHalf * kLanes;
  for (int f0 = 0; f0 < frames; f0 += kLanes) {
    const int lanes = frames - f0 < kLanes ? frames - f0 : kLanes;
    // Windowed sample pairs in bit-reversed order, one frame per lane,
    // each vector built in registers (lanes past the last frame repeat it;
    // their results are dropped).
    const float* frame[kLanes];
    for (int lane = 0; lane < kLanes; ++lane)
      frame[lane] = x + (f0 + (lane < lanes ? lane : lanes - 1)) * stride;
    for (int m = 0; m < kHalf; ++m) {
      Vec even, odd;
#pragma GCC unroll 16
      for (int lane = 0; lane < kLanes; ++lane) {
        even[lane] = frame[lane][2 * m];
        odd[lane] = frame[lane][2 * m + 1];
      }
      Store(real + Reverse7(m) * kLanes, even * Splat(window[2 * m]));
      Store(imag + Reverse7(m) * kLanes, odd * Splat(window[2 * m + 1]));
    }
    for (int size = 2; size <= kHalf; size *= 2) {
      const int half = size / 2;
      const int step = kFftSize / size;
      for (int t = 0; t < half; ++t) {
        // e^(-2 pi i t / size) = cos - i sin.
        const Vec cos_t = Splat(cos_table[t * step]);
        const Vec sin_t = Splat(sin_table[t * step]);
        for (int j = t; j < kHalf; j += size) {
          float* ur = real + j * kLanes;
          float* ui = imag + j * kLanes;
          float* vr = real + (j + half) * kLanes;
          float* vi = imag + (j + half) * kLanes;
          const Vec ar = Load(vr), ai = Load(vi);
          const Vec br = ar * cos_t + ai * sin_t;
          const Vec bi = ai * cos_t - ar * sin_t;
          const Vec xr = Load(ur), xi = Load(ui);
          Store(ur, xr + br);
          Store(ui, xi + bi);
          Store(vr, xr - br);
          Store(vi, xi - bi);
        }
      }
    }
    const Vec kHalfVec = Splat(0.5f);
    for (int k = 0; k <= kHalf; ++k) {
      const int a = k % kHalf, b = (kHalf - k) % kHalf;
      const Vec ar = Load(real + a * kLanes), ai = Load(imag + a * kLanes);
      const Vec br = Load(real + b * kLanes), bi = -Load(imag + b * kLanes);
      const Vec even_r = (ar + br) * kHalfVec, even_i = (ai + bi) * kHalfVec;
      const Vec odd_r = (ai - bi) * kHalfVec, odd_i = (br - ar) * kHalfVec;
      const Vec c = Splat(cos_table[k]), s = Splat(sin_table[k]);
      const Vec re = even_r + (odd_r * c + odd_i * s);
      const Vec im = even_i + (odd_i * c - odd_r * s);
      const Vec power = re * re + im * im;
      Vec magnitude;
#pragma GCC unroll 16
      for (int lane = 0; lane < kLanes; ++lane)
        magnitude[lane] = __builtin_sqrtf(power[lane]);
      for (int lane = 0; lane < lanes; ++lane)
        out[(f0 + lane) * out_stride + k] = magnitude[lane];
    }
  }
}

}  // namespace

const SileroKernels& VOXPRINT_VAD_KERNELS_GETTER() {
  static const SileroKernels kernels{VOXPRINT_VAD_KERNELS_NAME, &Gemm,
                                     &LstmStep, &StftMagnitude};
  return kernels;
}

}  // namespace voxprint::vad
