// Compute backends: where the ResNet runs.
//
// Three levels, "prepare once, run many":
//   Backend        one per device, made by CreateBackend("cpu" | "cuda[:N]" |
//                  "auto"). Only "auto" may choose; asking for an unusable
//                  device throws ErrorCode::kBackendUnavailable with the
//                  reason.
//   PreparedModel  weights already in the device's layout; immutable and
//                  thread-safe; shared by all sessions.
//   Session        per worker: scratch memory and a cache of compiled
//                  primitives keyed by input shape. NOT thread-safe: use one
//                  per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "voxprint/error.h"

namespace voxprint {

namespace model {
struct ResNetWeights;
}

struct BackendOptions {
  // Threads for the compute library (0: all cores).
  int num_threads = 0;
  // Numeric precision: "fp32" (default, reference parity); opt-in, faster
  // and less exact: "bf16" (cpu backend: every convolution in bf16), "mixed"
  // (cpu backend: stages 3-4 in bf16, the first layers in fp32) or "tf32"
  // (cuda backend).
  std::string precision = "fp32";
};

struct BackendInfo {
  std::string name;  // "cpu" or "cuda"
  int device_index = 0;
  int num_threads = 0;
  std::string description;  // ISA / GPU name, library versions
  std::string precision;
  // Frames one network run works best with: sliding windows are batched up
  // to this many (at most 32 windows).
  int64_t batch_frames = 6000;
};

class Session {
 public:
  virtual ~Session() = default;
  // features: row-major [batch, frames, bins] (mean already subtracted).
  // Returns row-major [batch, embedding_dim]. frames >= 1.
  virtual std::vector<float> Run(std::span<const float> features, int batch,
                                 int64_t frames) = 0;

  // One input of RunMixed: [frames, bins] (mean already subtracted).
  struct Input {
    std::span<const float> features;
    int64_t frames = 0;
  };
  // Inputs of different lengths (many files) -> [inputs, embedding_dim]:
  // row i is what Run(inputs[i].features, 1, inputs[i].frames) returns, up
  // to float rounding. The default runs them one by one; the CPU backend
  // batches inputs of similar length, each padded and masked so that it
  // sees zero padding exactly where it would alone.
  virtual std::vector<float> RunMixed(std::span<const Input> inputs) {
    std::vector<float> embeddings;
    for (const Input& input : inputs) {
      const std::vector<float> one = Run(input.features, 1, input.frames);
      embeddings.insert(embeddings.end(), one.begin(), one.end());
    }
    return embeddings;
  }

  // Fills out[0, count * bins) with rows [first_frame, first_frame + count)
  // of a [frames, bins] feature matrix (mean already subtracted).
  using FeatureSource =
      std::function<void(int64_t first_frame, int64_t count, float* out)>;
  // One item (batch 1) whose features are fetched range by range, so that a
  // long input never needs its whole feature matrix in memory. Ranges come
  // with first_frame non-decreasing (they may overlap: tiles and their
  // halo). Returns [embedding_dim]. The default fetches everything at once.
  virtual std::vector<float> RunWithFeatureSource(int64_t frames, int bins,
                                                  const FeatureSource& source) {
    std::vector<float> features(static_cast<size_t>(frames) *
                                static_cast<size_t>(bins));
    source(0, frames, features.data());
    return Run(features, 1, frames);
  }

  // Input frames [first_frame, first_frame + frames) of one item.
  struct FrameWindow {
    int64_t first_frame = 0;
    int64_t frames = 0;
  };
  // Shared-trunk sliding windows (an opt-in approximation of running each
  // window alone): runs the trunk once over one item's features
  // [frames, bins] and pools each window from that one output, taking the
  // trunk output frames a run on the window alone would give (clipped to
  // the input). Windows are sorted by first_frame with non-decreasing ends.
  // Returns [windows, embedding_dim]. Throws ErrorCode::kInvalidArgument
  // on backends without it (the default): the request cannot be served on
  // this device, retrying would not help.
  virtual std::vector<float> RunSharedTrunk(
      std::span<const float> /*features*/, int64_t /*frames*/,
      std::span<const FrameWindow> /*windows*/) {
    throw Error(ErrorCode::kInvalidArgument,
                "shared-trunk sliding windows run on the cpu backend only");
  }
};

class PreparedModel {
 public:
  virtual ~PreparedModel() = default;
  virtual std::unique_ptr<Session> NewSession() const = 0;
  virtual int EmbeddingDim() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendInfo Info() const = 0;
  // Reorders/copies weights for this device. Throws voxprint::Error.
  virtual std::shared_ptr<const PreparedModel> Prepare(
      const model::ResNetWeights& weights) const = 0;
  // Same, taking the weights over: backends that keep host copies keep
  // these instead of copying (the default copies).
  virtual std::shared_ptr<const PreparedModel> Prepare(
      model::ResNetWeights&& weights) const {
    const model::ResNetWeights& view = weights;
    return Prepare(view);
  }
};

// "cpu", "cuda", "cuda:N" or "auto". `why` (optional) receives one line on
// what "auto" chose and why.
std::unique_ptr<Backend> CreateBackend(const std::string& device,
                                       const BackendOptions& options = {},
                                       std::string* why = nullptr);

}  // namespace voxprint
