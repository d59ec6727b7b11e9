// Mono 16 kHz samples -> embeddings: fbank, mean subtraction and the
// network, for the whole input or for pyannote's sliding windows. Nothing
// here decodes: the Extractor decodes, resamples and cuts excerpts, then
// hands the samples over (and voxprint-gpu-bench uses this directly, on
// machines without FFmpeg).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "pipeline/request-batcher.h"
#include "pipeline/session-pool.h"
#include "scoring/windows.h"
#include "voxprint/extractor.h"
#include "voxprint/features.h"

namespace voxprint::pipeline {

// Prefixes errors raised below the pipeline (which do not know the input's
// name) with it, keeping the code.
template <typename Function>
auto NamingErrors(const std::string& name, Function&& function) {
  try {
    return function();
  } catch (const Error& error) {
    const std::string message = error.what();
    if (message.rfind(name, 0) == 0) throw;
    throw Error(error.code(), name + ": " + message);
  }
}

// "1.5 s": seconds in messages.
std::string SecondsText(double s);

// Throws ErrorCode::kInternal naming `what` (the input, a window) when
// `embeddings` hold a NaN or an infinity: weights that overflow float32
// give them, and a null-filled embedding must never pass for a result.
void CheckFinite(std::span<const float> embeddings, const std::string& what);

// Bounds on the windows of one sliding-window request (ExtractorOptions).
struct WindowLimits {
  double max_coverage = 100.0;  // windows x duration / audio length
  int64_t max_windows = 100000;
};

class SampleEmbedder {
 public:
  // The network needs at least two time steps after its three stride-2
  // stages for an unbiased standard deviation: 9 frames.
  static constexpr int64_t kMinFrames = 9;

  // `sessions` (and `batcher`) must outlive this. `batch_frames`: the
  // frames one network run of sliding windows may take (the backend's
  // BackendInfo). With `batcher`, whole inputs of concurrent calls share
  // network runs.
  SampleEmbedder(const FbankOptions& fbank, SessionPool& sessions,
                 int embedding_dim, int64_t batch_frames,
                 RequestBatcher* batcher = nullptr,
                 WindowLimits window_limits = {});

  // Mean-subtracted fbank; kCorruptInput (named) when too short to embed.
  // Long inputs are computed on several threads (same values).
  Features FeaturesOf(std::span<const float> samples_16k,
                      const std::string& name) const;

  // The network on ready features; `cancel` is checked between its tiles.
  // Every embedding is checked finite (CheckFinite, naming `name`).
  std::vector<float> Run(std::span<const float> features, int batch,
                         int64_t frames, const CancelToken& cancel = {},
                         const std::string& name = "features") const;

  // Throws kCancelled (named) once `cancel` is raised: before the features,
  // before the network and between its tiles.
  std::vector<float> EmbedWhole(std::span<const float> samples_16k,
                                const std::string& name,
                                const CancelToken& cancel = {}) const;

  // Throws kInvalidArgument, before any work, when the windows of `request`
  // over `num_samples` would exceed the WindowLimits (naming the step, the
  // count and the bound).
  void CheckWindowWork(int64_t num_samples, const EmbedRequest& request,
                       const std::string& name) const;

  // Windows of `request` (sliding mode) over the samples; their times are
  // shifted by `offset_s` (an excerpt's start). CheckWindowWork first;
  // request.cancel is checked between batches of windows.
  std::vector<WindowEmbedding> EmbedSliding(std::span<const float> samples_16k,
                                            const EmbedRequest& request,
                                            double offset_s,
                                            const std::string& name) const;

 private:
  // Features [count, frames, bins] of windows [first, first + count).
  std::vector<float> WindowFeatures(std::span<const float> samples_16k,
                                    const scoring::ChunkPlan& plan,
                                    int64_t frames, size_t first, size_t count,
                                    const std::string& name) const;
  std::vector<WindowEmbedding> EmbedSlidingShared(
      std::span<const float> samples_16k, const scoring::ChunkPlan& plan,
      int64_t window_frames, double offset_s, const CancelToken& cancel,
      const std::string& name) const;
  WindowEmbedding Window(const scoring::ChunkPlan& plan, size_t index,
                         double offset_s, std::span<const float> embeddings,
                         size_t row) const;

  FbankOptions fbank_;
  SessionPool& sessions_;
  int embedding_dim_;
  int64_t batch_frames_;
  RequestBatcher* batcher_;
  WindowLimits window_limits_;
};

}  // namespace voxprint::pipeline
