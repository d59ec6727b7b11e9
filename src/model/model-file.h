// Reads any supported model file into backend-free ResNet weights.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "model/resnet-weights.h"
#include "voxprint/model.h"

namespace voxprint::model {

struct LoadedModel {
  ResNetWeights weights;  // BatchNorm folded, shapes validated
  ModelInfo info;         // format, checksum, architecture
};

// Detects the format from the bytes (zip magic -> torch.save checkpoint,
// otherwise ONNX protobuf). Throws ErrorCode::kIoError when the file cannot
// be read and ErrorCode::kModelError, naming the file and the reason, for
// anything malformed, truncated, unsafe or of unexpected shape.
LoadedModel LoadModelFile(const std::string& path);

// Same, from bytes in memory; `name` is used in messages and ModelInfo::path.
LoadedModel LoadModelBytes(std::span<const uint8_t> bytes,
                           const std::string& name);

}  // namespace voxprint::model
