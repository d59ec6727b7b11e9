// Fuzz target: the RTTM parser, then DER of what it accepted against itself
// (which must be 0 of every error). Every failure must be a voxprint::Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "voxprint/der.h"
#include "voxprint/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  voxprint::RttmLimits limits;
  limits.max_turns = 256;  // keeps each run short; the bounds are tested
  limits.max_time_s = 1e5;
  try {
    const std::vector<voxprint::RttmTurn> turns = voxprint::ParseRttm(
        std::string_view(reinterpret_cast<const char*>(data), size),
        "fuzz-input.rttm", limits);
    for (double collar : {0.0, 0.5}) {
      const voxprint::DerResult result =
          voxprint::ComputeDer(turns, turns, voxprint::DerOptions{collar, {}});
      if (result.missed_s != 0.0 || result.false_alarm_s != 0.0 ||
          result.confusion_s > 1e-6 * (1.0 + result.total_s))
        __builtin_trap();
    }
  } catch (const voxprint::Error&) {
  }
  return 0;
}
