// Backend-free description of a WeSpeaker ResNet's inference weights.
//
// Every loader (pytorch zip, ONNX) produces this; every backend consumes it.
// BatchNorm is already folded into each convolution (weight scaled per output
// channel, a bias added), so a layer is conv + bias (+ ReLU).
//
// Data layout (what the network computes, as WeSpeaker does):
//   features [batch, frames, bins] are viewed as an image [batch, 1, bins,
//   frames]: height = frequency, width = time.
//   stem:    conv3x3(1 -> C0), stride 1, pad 1, ReLU
//   stage s: blocks; the first block of stages 1..3 has stride 2 (both axes)
//     basic block:      relu(conv3x3(stride) ) -> conv3x3 ; + shortcut ; ReLU
//     bottleneck block: relu(conv1x1) -> relu(conv3x3(stride)) -> conv1x1 ;
//                       + shortcut ; ReLU
//     shortcut: identity, or conv1x1(stride) (+ folded BN) when shape changes
//   pooling: [batch, C, H, W] -> rows (C*H) -> mean and unbiased std over W
//            -> [batch, 2*C*H] (all means first, then all stds)
//   embedding = pooled * embedding_weight^T + embedding_bias
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "voxprint/model.h"

namespace voxprint::model {

// A convolution with BatchNorm folded in.
struct FoldedConv {
  int out_channels = 0;
  int in_channels = 0;
  int kernel = 3;             // square kernel: 3 or 1
  int stride = 1;             // same on both axes
  int padding = 1;            // same on both axes
  std::vector<float> weight;  // [out][in][k][k], row-major
  std::vector<float> bias;    // [out]
};

struct ResidualBlock {
  // 2 convs (basic) or 3 (bottleneck); ReLU after all but the last.
  std::vector<FoldedConv> convs;
  std::optional<FoldedConv> shortcut;  // absent: identity
};

struct ResNetWeights {
  ResNetArchitecture architecture;
  FoldedConv stem;
  std::vector<std::vector<ResidualBlock>> stages;  // 4 stages
  std::vector<float> embedding_weight;  // [embedding_dim][PooledDim()]
  std::vector<float> embedding_bias;    // [embedding_dim]
};

// Geometry of one convolution as the architecture prescribes it.
struct ConvSpec {
  int out_channels = 0;
  int in_channels = 0;
  int kernel = 3;
  int stride = 1;
  int padding = 1;
};

// The stem: conv3x3(1 -> base_channels), stride 1, pad 1.
ConvSpec StemSpec(const ResNetArchitecture& architecture);
// The main-path convolutions of block `block` of stage `stage` (0-based): 2
// for basic blocks, 3 for bottleneck blocks (stride on the 3x3 conv).
std::vector<ConvSpec> BlockConvSpecs(const ResNetArchitecture& architecture,
                                     int stage, int block);
// The block's 1x1 projection shortcut, or nullopt for an identity shortcut
// (present when the block changes the stride or the channel count).
std::optional<ConvSpec> ShortcutSpec(const ResNetArchitecture& architecture,
                                     int stage, int block);

// "ResNet34", "ResNet152", ...: 2 (basic) or 3 (bottleneck) convs per block
// plus the stem and the embedding layer.
std::string ArchitectureName(ResidualBlockKind block,
                             const std::array<int, 4>& blocks_per_stage);

// The most weights a model may have: WeSpeaker's largest model, ResNet293,
// has about 28 M parameters; 64 Mi (67,108,864) leaves room for any real
// model and refuses, before anything is read, a file that claims billions
// (a checkpoint of stride-0 views takes 28 KB to describe 11 GB of weights).
// It bounds ResNetArchitecture::ParameterCount(), every tensor, and the
// weights an ONNX file holds.
inline constexpr int64_t kMaxModelParameters = int64_t{64} << 20;

// Throws ErrorCode::kModelError naming `source` unless every count of the
// architecture is in a sane range and its parameter count is at most
// kMaxModelParameters (loaders call it before allocating).
void ValidateArchitecture(const ResNetArchitecture& architecture,
                          const std::string& source);

// Throws ErrorCode::kModelError naming `source` when the architecture is out
// of range, when any shape, stride or padding does not match it, or when a
// value is not finite (used by every loader after mapping).
void ValidateWeights(const ResNetWeights& weights, const std::string& source);

}  // namespace voxprint::model
