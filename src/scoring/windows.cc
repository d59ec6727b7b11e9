#include "scoring/windows.h"

#include <cmath>
#include <string>

#include "voxprint/error.h"

namespace voxprint::scoring {

ChunkPlan PlanChunks(int64_t num_samples, double duration_s, double step_s,
                     int sample_rate_hz) {
  ChunkPlan plan;
  plan.chunk_samples = std::llround(duration_s * sample_rate_hz);
  plan.step_samples = std::llround(step_s * sample_rate_hz);
  if (!(duration_s > 0) || plan.chunk_samples <= 0)
    throw Error(ErrorCode::kInvalidArgument,
                "window duration " + std::to_string(duration_s) +
                    " s is not a positive number of samples");
  if (!(step_s > 0) || plan.step_samples <= 0)
    throw Error(ErrorCode::kInvalidArgument,
                "window step " + std::to_string(step_s) +
                    " s is not a positive number of samples");
  int64_t full_chunks = 0;
  if (num_samples >= plan.chunk_samples)
    full_chunks = (num_samples - plan.chunk_samples) / plan.step_samples + 1;
  for (int64_t i = 0; i < full_chunks; ++i)
    plan.starts.push_back(i * plan.step_samples);
  const bool has_last_chunk =
      num_samples < plan.chunk_samples ||
      (num_samples - plan.chunk_samples) % plan.step_samples > 0;
  if (has_last_chunk) plan.starts.push_back(full_chunks * plan.step_samples);
  return plan;
}

int64_t SampleAtTime(double t_s, int sample_rate_hz) {
  return static_cast<int64_t>(std::floor(t_s * sample_rate_hz));
}

}  // namespace voxprint::scoring
