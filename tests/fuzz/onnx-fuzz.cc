// Fuzz target: ONNX model files through the model loader (protobuf parse,
// the walk of the graph from its input, attribute and shape checks, then the
// loader's own validation). Every failure must be a voxprint::Error.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "model/model-file.h"
#include "voxprint/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Bytes starting like a zip go to the checkpoint reader: the other target.
  if (size >= 4 && std::memcmp(data, "PK\x03\x04", 4) == 0) return -1;
  voxprint::model::LoadOptions options;
  options.checksum = false;
  try {
    voxprint::model::LoadModelBytes(std::span<const uint8_t>(data, size),
                                    "fuzz-input.onnx", options);
  } catch (const voxprint::Error&) {
  }
  return 0;
}
