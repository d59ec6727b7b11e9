// Comparing two float32 fbank computations value by value.
//
// Each FFT's rounding perturbs every output bin by about eps * sqrt(E), E the
// frame's energy, so a log mel energy e moves by ~eps * sqrt(E / e): ~1e-5 in
// strong bins, but ~1e-3 in the rare bins 100 dB below their frame (there
// torchaudio itself is 1.2e-3 from a float64 computation, measured). So each
// value is allowed a floor plus that noise term, E and e taken from our own
// un-normalised features, and never more than a hard cap. A wrong detail
// (window, preemphasis, mel edges) scores 50 to 20000 times the allowance.
#pragma once

#include <gtest/gtest.h>

#include <span>

#include "voxprint/features.h"

namespace voxprint::testing {

struct FbankTolerance {
  double floor_abs;     // allowed |diff| in every value, before the noise term
  double noise_factor;  // the noise term's multiple of eps * sqrt(E / e)
  double cap_abs = 1e-2;  // never more than this in any value
};

struct FbankComparison {
  double max_abs = 0.0;    // plain max |ours - reference|
  double max_score = 0.0;  // max |ours - reference| / allowed
  // The smallest noise_factor that would pass every value at this floor.
  double needed_noise_factor = 0.0;
  ::testing::AssertionResult result = ::testing::AssertionSuccess();
};

// `ours` and `reference` are [frames, bins], both raw or both mean-subtracted;
// `ours_raw` is our un-normalised output, which gives the energies.
FbankComparison CompareFbank(std::span<const float> ours,
                             std::span<const float> reference,
                             const Features& ours_raw,
                             const FbankTolerance& tolerance);

}  // namespace voxprint::testing
