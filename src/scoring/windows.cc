#include "scoring/windows.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "voxprint/error.h"

namespace voxprint::scoring {
namespace {

// Sample counts beyond this are refused before any conversion: 2^53 is where
// doubles stop holding every integer, far below int64's range, and still
// eighteen thousand years at 16 kHz.
constexpr double kMaxSamples = 9007199254740992.0;

std::string Seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g s", s);
  return text;
}

}  // namespace

int64_t SamplesInSeconds(double seconds, int sample_rate_hz, const char* what) {
  const double samples = std::round(seconds * sample_rate_hz);
  if (!(samples >= 0 && samples <= kMaxSamples))
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + " " + Seconds(seconds) +
                    " is not a usable number of samples");
  return static_cast<int64_t>(samples);
}

ChunkPlan PlanChunks(int64_t num_samples, double duration_s, double step_s,
                     int sample_rate_hz) {
  ChunkPlan plan;
  plan.chunk_samples =
      SamplesInSeconds(duration_s, sample_rate_hz, "window duration");
  plan.step_samples = SamplesInSeconds(step_s, sample_rate_hz, "window step");
  if (!(duration_s > 0) || plan.chunk_samples <= 0)
    throw Error(ErrorCode::kInvalidArgument,
                "window duration " + Seconds(duration_s) +
                    " is not a positive number of samples");
  if (!(step_s > 0) || plan.step_samples <= 0)
    throw Error(ErrorCode::kInvalidArgument,
                "window step " + Seconds(step_s) +
                    " is not a positive number of samples");
  const int64_t count =
      ChunkCount(num_samples, plan.chunk_samples, plan.step_samples);
  plan.starts.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i)
    plan.starts.push_back(i * plan.step_samples);
  return plan;
}

int64_t ChunkCount(int64_t num_samples, int64_t chunk_samples,
                   int64_t step_samples) {
  int64_t full_chunks = 0;
  if (num_samples >= chunk_samples)
    full_chunks = (num_samples - chunk_samples) / step_samples + 1;
  const bool has_last_chunk = num_samples < chunk_samples ||
                              (num_samples - chunk_samples) % step_samples > 0;
  return full_chunks + (has_last_chunk ? 1 : 0);
}

int64_t SampleAtTime(double t_s, int sample_rate_hz) {
  const double sample = std::floor(t_s * sample_rate_hz);
  if (!(sample >= 0 && sample <= kMaxSamples))
    throw Error(ErrorCode::kInvalidArgument,
                "time " + Seconds(t_s) + " is outside the audio's range");
  return static_cast<int64_t>(sample);
}

}  // namespace voxprint::scoring
