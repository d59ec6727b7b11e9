#include "random-resnet.h"

#include <cmath>

namespace voxprint::testing {

using model::FoldedConv;
using model::ResidualBlock;
using model::ResNetWeights;

namespace {
int OutputRows(int rows) {
  for (int stage = 1; stage < 4; ++stage) rows = (rows - 1) / 2 + 1;
  return rows;
}
}  // namespace

FoldedConv RandomConv(int in, int out, int kernel, int stride,
                      std::mt19937& rng) {
  FoldedConv conv;
  conv.in_channels = in;
  conv.out_channels = out;
  conv.kernel = kernel;
  conv.stride = stride;
  conv.padding = kernel / 2;
  // He scaling keeps activations of order one through the layers, as the
  // BatchNorm-calibrated reference weights do.
  std::normal_distribution<float> weight(
      0.0f, std::sqrt(2.0f / static_cast<float>(in * kernel * kernel)));
  std::normal_distribution<float> bias(0.0f, 0.1f);
  conv.weight.resize(static_cast<size_t>(out) * in * kernel * kernel);
  for (float& w : conv.weight) w = weight(rng);
  conv.bias.resize(out);
  for (float& b : conv.bias) b = bias(rng);
  return conv;
}

ResNetWeights RandomWeights(const ResNetArchitecture& arch, uint32_t seed) {
  std::mt19937 rng(seed);
  ResNetWeights w;
  w.architecture = arch;
  const int base = arch.base_channels;
  const int expansion = arch.Expansion();
  w.stem = RandomConv(1, base, 3, 1, rng);
  int in_planes = base;
  w.stages.resize(4);
  for (int s = 0; s < 4; ++s) {
    const int planes = base << s;
    for (int b = 0; b < arch.blocks_per_stage[s]; ++b) {
      const int stride = (s > 0 && b == 0) ? 2 : 1;
      ResidualBlock block;
      if (arch.block == ResidualBlockKind::kBasic) {
        block.convs.push_back(RandomConv(in_planes, planes, 3, stride, rng));
        block.convs.push_back(RandomConv(planes, planes, 3, 1, rng));
      } else {
        block.convs.push_back(RandomConv(in_planes, planes, 1, 1, rng));
        block.convs.push_back(RandomConv(planes, planes, 3, stride, rng));
        block.convs.push_back(
            RandomConv(planes, planes * expansion, 1, 1, rng));
      }
      if (stride != 1 || in_planes != planes * expansion)
        block.shortcut =
            RandomConv(in_planes, planes * expansion, 1, stride, rng);
      in_planes = planes * expansion;
      w.stages[s].push_back(std::move(block));
    }
  }
  const int pooled = 2 * in_planes * OutputRows(arch.feature_dim);
  std::normal_distribution<float> dist(0.0f, 1.0f / std::sqrt(pooled * 1.0f));
  w.embedding_weight.resize(static_cast<size_t>(arch.embedding_dim) * pooled);
  for (float& x : w.embedding_weight) x = dist(rng);
  w.embedding_bias.resize(arch.embedding_dim);
  for (float& x : w.embedding_bias) x = dist(rng);
  return w;
}

std::vector<float> RandomFeatures(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng);
  return v;
}

ResNetArchitecture WideBasic() {
  ResNetArchitecture arch;
  arch.name = "test-wide";
  arch.blocks_per_stage = {1, 1, 2, 2};
  arch.base_channels = 16;
  arch.feature_dim = 80;
  arch.embedding_dim = 16;
  return arch;
}

}  // namespace voxprint::testing
