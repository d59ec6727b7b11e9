// Access to ../shared/reference (the reference kit) and comparison helpers.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace voxprint::testing {

// The kit's directory: $VOXPRINT_REFERENCE_DIR, else
// <repo>/../shared/reference.
std::filesystem::path ReferenceDir();
bool HasReferenceKit();

// Skips the current test, naming the path, when the kit is absent.
#define VOXPRINT_REQUIRE_REFERENCE_KIT()                  \
  do {                                                    \
    if (!::voxprint::testing::HasReferenceKit())          \
      GTEST_SKIP() << "reference kit not found at "       \
                   << ::voxprint::testing::ReferenceDir() \
                   << " (set VOXPRINT_REFERENCE_DIR)";    \
  } while (0)

// A float32 .npy array (C order).
struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> values;
};
NpyArray LoadNpy(const std::filesystem::path& path);

// |a - b| / |b| (L2). Sizes must match.
double RelativeL2(std::span<const float> actual,
                  std::span<const float> expected);

// Asserts sizes match and RelativeL2 <= tolerance; on failure reports the
// largest differing index with both values.
::testing::AssertionResult CloseInRelativeL2(std::span<const float> actual,
                                             std::span<const float> expected,
                                             double tolerance);

// Asserts sizes match and max |a - b| <= tolerance, reporting the worst index.
::testing::AssertionResult CloseInMaxAbs(std::span<const float> actual,
                                         std::span<const float> expected,
                                         double tolerance);

// Reads a whole file (throws std::runtime_error when it cannot).
std::vector<uint8_t> ReadFileBytes(const std::filesystem::path& path);

}  // namespace voxprint::testing
