// Fuzz target: the restricted pickle reader alone, on data.pkl bytes. Inside
// a checkpoint the zip's CRC check stops nearly every mutation of the pickle
// before it is read, so the reader gets its own target. Every failure must
// be a voxprint::Error.
#include <cstddef>
#include <cstdint>
#include <span>

#include "model/pickle.h"
#include "voxprint/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    voxprint::model::pickle::Unpickle(std::span<const uint8_t>(data, size),
                                      "fuzz-input (data.pkl)");
  } catch (const voxprint::Error&) {
  }
  return 0;
}
