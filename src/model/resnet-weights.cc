#include "model/resnet-weights.h"

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>

#include "voxprint/error.h"

namespace voxprint::model {
namespace {

// Bounds that keep every size computation far from overflow; real WeSpeaker
// models (ResNet34 .. ResNet293) are well inside them.
constexpr int kMaxBaseChannels = 1024;
constexpr int kMaxBlocksPerStage = 256;
constexpr int kMaxFeatureDim = 1024;
constexpr int kMaxEmbeddingDim = 65536;

[[noreturn]] void Fail(const std::string& source, const std::string& what) {
  throw Error(ErrorCode::kModelError, source + ": " + what);
}

void CheckFinite(std::span<const float> values, const std::string& source,
                 const std::string& what) {
  // Branch-free scan first (it vectorises); locate the culprit only on error.
  bool all_finite = true;
  for (float value : values)
    all_finite &= std::abs(value) <= std::numeric_limits<float>::max();
  if (all_finite) return;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i]))
      Fail(source,
           what + " holds a non-finite value at index " + std::to_string(i));
  }
}

void CheckConv(const FoldedConv& conv, const ConvSpec& spec,
               const std::string& source, const std::string& name) {
  auto geometry = [](int out, int in, int k, int s, int p) {
    std::string text = "[";
    text += std::to_string(out);
    text += ", ";
    text += std::to_string(in);
    text += ", ";
    text += std::to_string(k);
    text += "x";
    text += std::to_string(k);
    text += "] stride ";
    text += std::to_string(s);
    text += " padding ";
    text += std::to_string(p);
    return text;
  };
  if (conv.out_channels != spec.out_channels ||
      conv.in_channels != spec.in_channels || conv.kernel != spec.kernel ||
      conv.stride != spec.stride || conv.padding != spec.padding) {
    Fail(source, name + " is " +
                     geometry(conv.out_channels, conv.in_channels, conv.kernel,
                              conv.stride, conv.padding) +
                     ", the architecture needs " +
                     geometry(spec.out_channels, spec.in_channels, spec.kernel,
                              spec.stride, spec.padding));
  }
  const size_t weight_count = static_cast<size_t>(spec.out_channels) *
                              spec.in_channels * spec.kernel * spec.kernel;
  if (conv.weight.size() != weight_count)
    Fail(source, name + " weight has " + std::to_string(conv.weight.size()) +
                     " values, expected " + std::to_string(weight_count));
  if (conv.bias.size() != static_cast<size_t>(spec.out_channels))
    Fail(source, name + " bias has " + std::to_string(conv.bias.size()) +
                     " values, expected " + std::to_string(spec.out_channels));
  CheckFinite(conv.weight, source, name + " weight");
  CheckFinite(conv.bias, source, name + " bias");
}

}  // namespace

void ValidateArchitecture(const ResNetArchitecture& arch,
                          const std::string& source) {
  if (arch.base_channels < 1 || arch.base_channels > kMaxBaseChannels)
    Fail(source, "base channel count " + std::to_string(arch.base_channels) +
                     " is out of range");
  for (int stage = 0; stage < 4; ++stage) {
    const int count = arch.blocks_per_stage[stage];
    if (count < 1 || count > kMaxBlocksPerStage)
      Fail(source, "layer" + std::to_string(stage + 1) + " has " +
                       std::to_string(count) + " blocks (out of range)");
  }
  if (arch.feature_dim < 8 || arch.feature_dim > kMaxFeatureDim)
    Fail(source, "feature dimension " + std::to_string(arch.feature_dim) +
                     " is out of range");
  if (arch.embedding_dim < 1 || arch.embedding_dim > kMaxEmbeddingDim)
    Fail(source, "embedding dimension " + std::to_string(arch.embedding_dim) +
                     " is out of range");
  // The counts above keep this product far from overflow.
  const int64_t parameters = arch.ParameterCount();
  if (parameters > kMaxModelParameters)
    Fail(source, ArchitectureName(arch.block, arch.blocks_per_stage) +
                     " with " + std::to_string(arch.base_channels) +
                     " base channels has " + std::to_string(parameters) +
                     " parameters, more than the limit of " +
                     std::to_string(kMaxModelParameters) +
                     " (the largest WeSpeaker model has about 28 M)");
}

void ValidateWeights(const ResNetWeights& weights, const std::string& source) {
  const ResNetArchitecture& arch = weights.architecture;
  ValidateArchitecture(arch, source);
  CheckConv(weights.stem, StemSpec(arch), source, "conv1 (stem)");
  if (weights.stages.size() != 4)
    Fail(source, "has " + std::to_string(weights.stages.size()) +
                     " stages, expected 4");
  for (int stage = 0; stage < 4; ++stage) {
    const auto& blocks = weights.stages[stage];
    const std::string layer = "layer" + std::to_string(stage + 1);
    if (blocks.size() != static_cast<size_t>(arch.blocks_per_stage[stage]))
      Fail(source, layer + " has " + std::to_string(blocks.size()) +
                       " blocks, the architecture says " +
                       std::to_string(arch.blocks_per_stage[stage]));
    for (int b = 0; b < static_cast<int>(blocks.size()); ++b) {
      const ResidualBlock& block = blocks[b];
      const std::string name = layer + "." + std::to_string(b);
      const std::vector<ConvSpec> specs = BlockConvSpecs(arch, stage, b);
      if (block.convs.size() != specs.size())
        Fail(source, name + " has " + std::to_string(block.convs.size()) +
                         " convolutions, expected " +
                         std::to_string(specs.size()));
      for (size_t c = 0; c < specs.size(); ++c)
        CheckConv(block.convs[c], specs[c], source,
                  name + ".conv" + std::to_string(c + 1));
      const std::optional<ConvSpec> shortcut = ShortcutSpec(arch, stage, b);
      if (shortcut.has_value() != block.shortcut.has_value())
        Fail(source, name + (shortcut ? " lacks its projection shortcut"
                                      : " has an unexpected projection "
                                        "shortcut"));
      if (shortcut)
        CheckConv(*block.shortcut, *shortcut, source, name + ".shortcut");
    }
  }

  const size_t pooled = static_cast<size_t>(arch.PooledDim());
  const size_t embedding = static_cast<size_t>(arch.embedding_dim);
  if (weights.embedding_weight.size() != embedding * pooled)
    Fail(source, "embedding layer (seg_1) weight has " +
                     std::to_string(weights.embedding_weight.size()) +
                     " values, expected " + std::to_string(embedding) + " x " +
                     std::to_string(pooled));
  if (weights.embedding_bias.size() != embedding)
    Fail(source, "embedding layer (seg_1) bias has " +
                     std::to_string(weights.embedding_bias.size()) +
                     " values, expected " + std::to_string(embedding));
  CheckFinite(weights.embedding_weight, source, "seg_1 weight");
  CheckFinite(weights.embedding_bias, source, "seg_1 bias");
}

}  // namespace voxprint::model
