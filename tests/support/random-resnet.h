// Random weights shaped like WeSpeaker's ResNets, for backend tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "model/resnet-weights.h"

namespace voxprint::testing {

// A conv with He-scaled weights (activations of order one through the
// layers, as the BatchNorm-calibrated reference weights have) and small
// biases; padding keeps the size (kernel / 2).
model::FoldedConv RandomConv(int in, int out, int kernel, int stride,
                             std::mt19937& rng);

// A whole network of the given architecture (basic or bottleneck).
model::ResNetWeights RandomWeights(const ResNetArchitecture& arch,
                                   uint32_t seed);

// ResNet34's layout shrunk (one or two blocks per stage, 16 base channels)
// but wide enough for oneDNN's Winograd kernels, with the real 80 bins.
ResNetArchitecture WideBasic();

// `count` standard-normal values, e.g. features [batch, frames, bins].
std::vector<float> RandomFeatures(size_t count, uint32_t seed);

}  // namespace voxprint::testing
