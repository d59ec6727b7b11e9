// The Silero VAD model as voxprint finds it, for tests that need it: they
// skip, saying how to install it, where it is absent.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "voxprint/error.h"
#include "voxprint/vad.h"

namespace voxprint::testing {

// FindVadModel()'s path; empty when no model is found.
inline std::string VadModelPathOrEmpty() {
  try {
    return FindVadModel();
  } catch (const Error&) {
    return {};
  }
}

inline constexpr char kVadModelAbsent[] =
    "Silero VAD model absent: run `npm ci` in models/vad "
    "(scripts/install-deps.sh) or set VOXPRINT_VAD_MODEL";

}  // namespace voxprint::testing

#define VOXPRINT_REQUIRE_VAD_MODEL()                        \
  do {                                                      \
    if (::voxprint::testing::VadModelPathOrEmpty().empty()) \
      GTEST_SKIP() << ::voxprint::testing::kVadModelAbsent; \
  } while (0)
