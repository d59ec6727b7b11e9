#include "backends/cpu/winograd-weights.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

namespace voxprint::backends::cpu {
namespace {

constexpr int kTaps = 3;  // 3x3 kernels

// The kernel transforms G (alpha x 3). F(4x4)'s rows are scaled so that its
// input and output transforms stay well conditioned; they must be the ones
// oneDNN's F(4x4) kernel pairs with, or the convolution is wrong.
constexpr float kG2x2[4][kTaps] = {{1.0f, 0.0f, 0.0f},
                                   {0.5f, 0.5f, 0.5f},
                                   {0.5f, -0.5f, 0.5f},
                                   {0.0f, 0.0f, 1.0f}};
constexpr float kG4x4[6][kTaps] = {
    {1.13777777777778f, 0.f, 0.f},
    {-0.688403361344538f, -0.430252100840336f, -0.26890756302521f},
    {-0.688403361344538f, 0.430252100840336f, -0.26890756302521f},
    {0.119514472455649f, 0.179271708683473f, 0.26890756302521f},
    {0.119514472455649f, -0.179271708683473f, 0.26890756302521f},
    {0.f, 0.f, 1.f}};

// Output channels that the layout keeps together: oc_block, times
// oc2_block except in wino_wei_aaOio (whose descriptor's oc2_block is not
// used).
size_t OutputChannelChunk(const dnnl_wino_desc_t& wino) {
  return static_cast<size_t>(wino.oc_block) *
         (wino.wino_format == dnnl_wino_wei_aaOio ? 1 : wino.oc2_block);
}

// Elements of the transformed weights: alpha^2 * ic * oc.
size_t WinogradElements(const dnnl_wino_desc_t& wino) {
  return static_cast<size_t>(wino.alpha) * wino.alpha * wino.ic * wino.oc;
}

bool Divides(size_t block, size_t total) {
  return block > 0 && total % block == 0;
}

// U = G g G^T of input channel `in` with every output channel, as
// [alpha * alpha][oc] (the descriptor's oc, zeros past the weights'), output
// channels innermost so that the loops run over contiguous floats. The sums
// run in the order oneDNN's reorder uses, so the numbers are the same.
class ChannelTransform {
 public:
  ChannelTransform(const float* oihw, int out_channels, int in_channels,
                   const dnnl_wino_desc_t& wino)
      : oihw_(oihw),
        out_channels_(out_channels),
        in_channels_(in_channels),
        alpha_(wino.alpha),
        oc_(static_cast<size_t>(wino.oc)),
        g_(wino.alpha == 6 ? &kG4x4[0][0] : &kG2x2[0][0]),
        taps_(kTaps * kTaps * oc_, 0.0f),
        half_(kTaps * alpha_ * oc_),
        result_(static_cast<size_t>(alpha_) * alpha_ * oc_, 0.0f) {}

  // Row u (= a * alpha + j) of the result for channel `in`.
  const float* Compute(int in) {
    if (in >= in_channels_) {  // a padded channel: all zero
      std::fill(result_.begin(), result_.end(), 0.0f);
      return result_.data();
    }
    for (int o = 0; o < out_channels_; ++o)
      for (int kl = 0; kl < kTaps * kTaps; ++kl)
        taps_[kl * oc_ + o] =
            oihw_[(static_cast<size_t>(o) * in_channels_ + in) * kTaps * kTaps +
                  kl];
    // g G^T as [k][j][oc], then G (g G^T) as [a][j][oc].
    for (int k = 0; k < kTaps; ++k)
      for (int j = 0; j < alpha_; ++j) {
        float* out = &half_[(static_cast<size_t>(k) * alpha_ + j) * oc_];
        const float* row = &taps_[static_cast<size_t>(k) * kTaps * oc_];
        for (size_t o = 0; o < oc_; ++o) {
          float sum = 0.0f;
          for (int l = 0; l < kTaps; ++l)
            sum += row[l * oc_ + o] * g_[j * kTaps + l];
          out[o] = sum;
        }
      }
    for (int a = 0; a < alpha_; ++a)
      for (int j = 0; j < alpha_; ++j) {
        float* out = &result_[(static_cast<size_t>(a) * alpha_ + j) * oc_];
        for (size_t o = 0; o < oc_; ++o) {
          float sum = 0.0f;
          for (int k = 0; k < kTaps; ++k)
            sum += g_[a * kTaps + k] *
                   half_[(static_cast<size_t>(k) * alpha_ + j) * oc_ + o];
          out[o] = sum;
        }
      }
    return result_.data();
  }

 private:
  const float* oihw_;
  int out_channels_, in_channels_, alpha_;
  size_t oc_;
  const float* g_;
  std::vector<float> taps_, half_, result_;
};

// F(2x2)'s layouts: wino_wei_aaOBiOo is [alpha][alpha][oc chunk][ic block]
// [ic in block][oc2 blocks][oc in block], i.e. runs of oc2 * oc_block output
// channels at ((u * chunks + chunk) * ic + in) * run; wino_wei_aaOio the same
// with chunks of one oc block (its descriptor's oc2_block is not used).
void PackF2x2(ChannelTransform& transform, const dnnl_wino_desc_t& wino,
              float* packed) {
  const size_t oc = static_cast<size_t>(wino.oc);
  const size_t ic = static_cast<size_t>(wino.ic);
  const size_t run = OutputChannelChunk(wino);
  const size_t chunks = oc / run;
  for (size_t in = 0; in < ic; ++in) {
    const float* u_rows = transform.Compute(static_cast<int>(in));
    for (size_t u = 0; u < static_cast<size_t>(wino.alpha) * wino.alpha; ++u)
      for (size_t chunk = 0; chunk < chunks; ++chunk)
        std::memcpy(packed + ((u * chunks + chunk) * ic + in) * run,
                    u_rows + u * oc + chunk * run, run * sizeof(float));
  }
}

// wino_wei_OBaaIBOIio: [oc chunk][alpha][alpha][ic chunk][oc2 block]
// [ic2 block][ic in block][oc in block], in runs of one oc block.
void PackF4x4(ChannelTransform& transform, const dnnl_wino_desc_t& wino,
              float* packed) {
  const size_t oc = static_cast<size_t>(wino.oc);
  const size_t ic = static_cast<size_t>(wino.ic);
  const size_t run = static_cast<size_t>(wino.oc_block);
  const size_t oc2 = static_cast<size_t>(wino.oc2_block);
  const size_t ic_chunk = static_cast<size_t>(wino.ic_block) * wino.ic2_block;
  const size_t ic_chunks = ic / ic_chunk;
  const size_t oc_chunks = oc / OutputChannelChunk(wino);
  const size_t uu = static_cast<size_t>(wino.alpha) * wino.alpha;
  for (size_t in = 0; in < ic; ++in) {
    const float* u_rows = transform.Compute(static_cast<int>(in));
    const size_t icc = in / ic_chunk, in_chunk = in % ic_chunk;
    for (size_t chunk = 0; chunk < oc_chunks; ++chunk)
      for (size_t u = 0; u < uu; ++u)
        for (size_t ob = 0; ob < oc2; ++ob) {
          const size_t at =
              ((((chunk * uu + u) * ic_chunks + icc) * oc2 + ob) * ic_chunk +
               in_chunk) *
              run;
          std::memcpy(packed + at, u_rows + u * oc + (chunk * oc2 + ob) * run,
                      run * sizeof(float));
        }
  }
}

}  // namespace

bool CanPackWinogradWeights(const dnnl_memory_desc_t& desc) {
  if (desc.format_kind != dnnl_format_kind_wino || desc.data_type != dnnl_f32)
    return false;
  const dnnl_wino_desc_t& wino = desc.format_desc.wino_desc;
  const bool f2x2 = (wino.wino_format == dnnl_wino_wei_aaOBiOo ||
                     wino.wino_format == dnnl_wino_wei_aaOio) &&
                    wino.alpha == 4;
  const bool f4x4 =
      wino.wino_format == dnnl_wino_wei_OBaaIBOIio && wino.alpha == 6;
  return (f2x2 || f4x4) && wino.r == kTaps && desc.ndims == 4 &&
         Divides(
             static_cast<size_t>(wino.ic_block) * (f4x4 ? wino.ic2_block : 1),
             wino.ic) &&
         Divides(OutputChannelChunk(wino), wino.oc) &&
         wino.ic >= desc.dims[1] && wino.oc >= desc.dims[0] &&
         wino.size >= WinogradElements(wino) * sizeof(float);
}

void PackWinogradWeights(const float* oihw, int out_channels, int in_channels,
                         const dnnl_memory_desc_t& desc, float* packed) {
  const dnnl_wino_desc_t& wino = desc.format_desc.wino_desc;
  ChannelTransform transform(oihw, out_channels, in_channels, wino);
  if (wino.alpha == 4)
    PackF2x2(transform, wino, packed);
  else
    PackF4x4(transform, wino, packed);
  // Every element of alpha^2 * ic * oc was written once; zero any tail.
  std::fill(packed + WinogradElements(wino), packed + wino.size / sizeof(float),
            0.0f);
}

}  // namespace voxprint::backends::cpu
