// Reads any supported model file into backend-free ResNet weights.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "model/resnet-weights.h"
#include "voxprint/model.h"

namespace voxprint::model {

struct LoadOptions {
  // ModelInfo::sha256 of the file's bytes, computed on another core while
  // the weights load. Callers that never show it skip it (it takes a core
  // from the parallel load: ~10 % of start-up latency).
  bool checksum = true;
};

struct LoadedModel {
  ResNetWeights weights;  // BatchNorm folded, shapes validated
  ModelInfo info;         // format, checksum, architecture
};

// Detects the format from the bytes (zip magic -> torch.save checkpoint:
// pyannote if its pickle has a `state_dict` entry, WeSpeaker for a bare state
// dict; otherwise an ONNX protobuf), maps the weights, folds BatchNorm and
// validates every shape against the detected architecture. A checkpoint zip
// is read from the open file, each tensor straight into its place; an ONNX
// file is read once into memory (files over 1 GiB are refused).
// ModelInfo::sha256 is the SHA-256 of the file (empty without
// LoadOptions::checksum). Nothing in the file is ever executed, and nothing
// is allocated for a size the file claims before it is checked: at most
// kMaxModelParameters weights, each tensor's view reading each element of
// its storage once, every zip entry holding the bytes it claims (and its
// CRC-32 verified).
//
// Throws ErrorCode::kIoError when the file cannot be opened or read, and
// ErrorCode::kModelError, as "<path>: <reason>", for anything empty,
// malformed, truncated, damaged, unsafe (a pickle calling os.system, ...),
// too large or of unexpected shape, and for an allocation that fails while
// loading. Thread-safe: loads share no state.
LoadedModel LoadModelFile(const std::string& path,
                          const LoadOptions& options = {});

// Same, from bytes in memory; `name` is used in messages and ModelInfo::path.
LoadedModel LoadModelBytes(std::span<const uint8_t> bytes,
                           const std::string& name,
                           const LoadOptions& options = {});

}  // namespace voxprint::model
