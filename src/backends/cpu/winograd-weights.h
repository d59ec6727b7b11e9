// 3x3 convolution weights transformed to the Winograd domain, in the layouts
// that oneDNN 2.6's fp32 Winograd kernels read.
//
// Why not oneDNN's own reorder: it is a scalar reference loop, ~45 ms for one
// 256x256 layer and ~0.35 s for the network, and the kernels block their
// weights by the input's shape, so a new input length often needs the whole
// transform again (the length row of bench/run.py: +0.3 to +0.6 s on the
// first request at 13 s and 21 s). Computed here, vectorised over output
// channels, the same transform takes a few milliseconds.
//
// The transform is U = G g G^T for each (output, input) channel pair, with
// the G of each kernel: F(2x2, 3x3) the textbook one, F(4x4, 3x3) the scaled
// one that oneDNN's input and output transforms pair with. The layouts are
// oneDNN's wino_wei_aaOio and wino_wei_aaOBiOo (F(2x2)) and
// wino_wei_OBaaIBOIio (F(4x4)), whose blocking the memory descriptor carries.
#pragma once

#include <oneapi/dnnl/dnnl_types.h>

namespace voxprint::backends::cpu {

// Whether PackWinogradWeights writes `desc`: fp32, 3x3, one of the two
// layouts above.
bool CanPackWinogradWeights(const dnnl_memory_desc_t& desc);

// Weights [out_channels][in_channels][3][3] (oihw, fp32) into `packed`, a
// buffer of the descriptor's size. Channels past the weights' counts (a
// descriptor padded to its blocks) get zeros.
void PackWinogradWeights(const float* oihw, int out_channels, int in_channels,
                         const dnnl_memory_desc_t& desc, float* packed);

}  // namespace voxprint::backends::cpu
