// Fuzz target: torch.save checkpoints (zip + restricted pickle + tensor
// views) through the model loader, as `--model x.pt` reads them: format
// detection, the zip directory, data.pkl, the storages, BatchNorm folding
// and shape validation. Every failure must be a voxprint::Error.
#include <cstddef>
#include <cstdint>
#include <span>

#include "model/model-file.h"
#include "voxprint/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  voxprint::model::LoadOptions options;
  options.checksum = false;  // SHA-256 of the bytes: nothing to find there
  try {
    voxprint::model::LoadModelBytes(std::span<const uint8_t>(data, size),
                                    "fuzz-input.pt", options);
  } catch (const voxprint::Error&) {
  }
  return 0;
}
