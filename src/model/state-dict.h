// Maps a WeSpeaker ResNet state dict (pyannote's `resnet.`-prefixed one or
// WeSpeaker's bare one) onto ResNetWeights, folding every BatchNorm.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/resnet-weights.h"

namespace voxprint::model {

// Read access to the named tensors of a checkpoint. Shapes are cheap;
// values are materialised on demand (only the tensors the model needs).
// Implementations are thread-safe: MapStateDict reads tensors concurrently.
class StateDictSource {
 public:
  virtual ~StateDictSource() = default;
  virtual std::vector<std::string> Keys() const = 0;
  // nullopt when `key` is absent (or not a tensor).
  virtual std::optional<std::vector<int64_t>> Shape(
      const std::string& key) const = 0;
  // Row-major float32 values, as many as the shape says; throws
  // Error(kModelError) when the tensor cannot be read or converted.
  virtual std::vector<float> Values(const std::string& key) const = 0;
};

// A float tensor held in memory.
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// A state dict held in memory (for synthetic checkpoints in tests).
class HostStateDict : public StateDictSource {
 public:
  std::map<std::string, HostTensor> tensors;

  std::vector<std::string> Keys() const override;
  std::optional<std::vector<int64_t>> Shape(
      const std::string& key) const override;
  std::vector<float> Values(const std::string& key) const override;
};

// BatchNorm2d's default epsilon, which WeSpeaker's ResNets use.
inline constexpr double kBatchNormEpsilon = 1e-5;

// Detects the architecture from the keys and shapes (key prefix, blocks per
// stage, basic vs bottleneck from conv3, base channels from conv1, embedding
// size from seg_1), then folds each conv's BatchNorm in double precision:
//   scale = gamma / sqrt(running_var + eps); w' = w * scale;
//   b' = beta - running_mean * scale.
// Ignores num_batches_tracked and the training head (projection.*); refuses
// unknown tensors under the prefix and a second embedding layer (seg_2).
// Throws Error(kModelError) naming `source`; the result is validated.
ResNetWeights MapStateDict(const StateDictSource& state_dict,
                           const std::string& source);

}  // namespace voxprint::model
