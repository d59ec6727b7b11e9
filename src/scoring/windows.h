// Where the sliding windows of a signal fall, following pyannote.audio's
// chunking: chunks of round(duration * rate) samples every
// round(step * rate); when the signal does not end exactly on a chunk (or is
// shorter than one chunk) a last chunk starts at the next step and is
// zero-padded to full length.
#pragma once

#include <cstdint>
#include <vector>

namespace voxprint::scoring {

struct ChunkPlan {
  int64_t chunk_samples = 0;
  int64_t step_samples = 0;
  // First sample of each chunk; chunk i covers [start, start + chunk_samples)
  // of the signal, zero-padded past its end.
  std::vector<int64_t> starts;
};

// Throws ErrorCode::kInvalidArgument when duration or step round to zero
// samples or are too large to count in samples. `num_samples` may be smaller
// than one chunk.
ChunkPlan PlanChunks(int64_t num_samples, double duration_s, double step_s,
                     int sample_rate_hz);

// The number of chunks PlanChunks gives, without listing them (to bound the
// work before doing it). Chunk and step in samples, both > 0.
int64_t ChunkCount(int64_t num_samples, int64_t chunk_samples,
                   int64_t step_samples);

// round(seconds * rate) as PlanChunks sizes chunks; kInvalidArgument naming
// `what` when not finite, negative or beyond 2^53 samples (no float->integer
// conversion out of range).
int64_t SamplesInSeconds(double seconds, int sample_rate_hz, const char* what);

// Sample index of time `t_s` as pyannote's Audio.crop computes it:
// floor(t * rate). kInvalidArgument for a negative, non-finite or
// out-of-range time.
int64_t SampleAtTime(double t_s, int sample_rate_hz);

}  // namespace voxprint::scoring
