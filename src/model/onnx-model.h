// WeSpeaker ONNX exports: weights are found by following the graph, not by
// initializer names (the exporter folds BatchNorm into the convolutions and
// renames their weights onnx::Conv_NNN).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "model/resnet-weights.h"

namespace voxprint::model {

// Returns nullopt when `bytes` do not parse as an ONNX ModelProto with a
// graph (the caller then reports "not a model file"). Otherwise walks the
// graph from its input (`feats` [B, T, mel]): Transpose + Unsqueeze to
// [B, 1, mel, T], the stem Conv + Relu, each residual block (a Conv/Relu
// chain of 2 or 3 convs, an Add joining it with the identity or a 1x1 Conv
// shortcut, a Relu), and the final Gemm (or MatMul + Add) after pooling; a
// constant subtracted from the embedding (WeSpeaker's mean_vec) is folded
// into the bias. Checks every attribute and shape and throws
// Error(kModelError) naming `source` for anything else.
std::optional<ResNetWeights> ReadOnnxWeights(std::span<const uint8_t> bytes,
                                             const std::string& source);

}  // namespace voxprint::model
