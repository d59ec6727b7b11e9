#include "fbank-compare.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace voxprint::testing {

FbankComparison CompareFbank(std::span<const float> ours,
                             std::span<const float> reference,
                             const Features& ours_raw,
                             const FbankTolerance& tolerance) {
  FbankComparison comparison;
  if (ours.size() != reference.size() ||
      ours.size() != ours_raw.values.size()) {
    comparison.result = ::testing::AssertionFailure()
                        << "sizes " << ours.size() << " vs "
                        << reference.size();
    return comparison;
  }
  const double eps = std::numeric_limits<float>::epsilon();
  const int bins = ours_raw.num_bins;
  for (int64_t t = 0; t < ours_raw.num_frames; ++t) {
    const float* raw = ours_raw.Row(t);
    // log of the frame's total mel energy, computed without overflow.
    const double peak = *std::max_element(raw, raw + bins);
    double sum = 0.0;
    for (int m = 0; m < bins; ++m) sum += std::exp(raw[m] - peak);
    const double log_total = peak + std::log(sum);
    for (int m = 0; m < bins; ++m) {
      const size_t i = static_cast<size_t>(t) * bins + m;
      const double d = std::fabs(static_cast<double>(ours[i]) - reference[i]);
      const double noise = eps * std::exp(0.5 * (log_total - raw[m]));
      const double allowed =
          tolerance.floor_abs + tolerance.noise_factor * noise;
      comparison.max_abs = std::max(comparison.max_abs, d);
      comparison.max_score = std::max(comparison.max_score, d / allowed);
      comparison.needed_noise_factor = std::max(
          comparison.needed_noise_factor, (d - tolerance.floor_abs) / noise);
      if (comparison.result && (!(d <= allowed) || !(d <= tolerance.cap_abs))) {
        comparison.result = ::testing::AssertionFailure()
                            << "frame " << t << " bin " << m << ": " << ours[i]
                            << " vs reference " << reference[i] << ", |diff| "
                            << d << " > allowed "
                            << std::min(allowed, tolerance.cap_abs);
      }
    }
  }
  return comparison;
}

}  // namespace voxprint::testing
