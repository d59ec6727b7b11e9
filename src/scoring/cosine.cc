#include <cmath>
#include <span>
#include <string>

#include "voxprint/error.h"
#include "voxprint/extractor.h"

namespace voxprint {

double CosineSimilarity(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size())
    throw Error(ErrorCode::kInvalidArgument,
                "cannot compare embeddings of sizes " +
                    std::to_string(a.size()) + " and " +
                    std::to_string(b.size()));
  double dot = 0.0, norm_a = 0.0, norm_b = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    norm_a += static_cast<double>(a[i]) * a[i];
    norm_b += static_cast<double>(b[i]) * b[i];
  }
  if (!std::isfinite(dot) || !std::isfinite(norm_a) || !std::isfinite(norm_b))
    throw Error(ErrorCode::kInvalidArgument,
                "cannot compare embeddings holding NaN or infinite values");
  if (norm_a == 0.0 || norm_b == 0.0) return 0.0;
  return dot / std::sqrt(norm_a * norm_b);
}

}  // namespace voxprint
