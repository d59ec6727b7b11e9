// ResNetArchitecture arithmetic and the per-layer geometry every loader and
// validator shares.
#include <string>

#include "model/resnet-weights.h"
#include "voxprint/model.h"

namespace voxprint {

const char* ModelFormatName(ModelFormat format) {
  switch (format) {
    case ModelFormat::kPyannoteCheckpoint:
      return "pyannote checkpoint";
    case ModelFormat::kWespeakerCheckpoint:
      return "WeSpeaker checkpoint";
    case ModelFormat::kOnnx:
      return "ONNX";
  }
  return "unknown";
}

int ResNetArchitecture::OutputFrequencyRows() const {
  // Stages 1..3 each start with a stride-2 conv (3x3 pad 1, or the 1x1 pad 0
  // shortcut, which gives the same length): out = (in + 2 - 3) / 2 + 1.
  int rows = feature_dim;
  for (int stage = 1; stage < 4; ++stage) {
    if (rows <= 0) return 0;
    rows = (rows + 2 * 1 - 3) / 2 + 1;
  }
  return rows;
}

int64_t ResNetArchitecture::ParameterCount() const {
  // Each conv has no bias of its own but a BatchNorm (gamma and beta).
  auto conv_params = [](const model::ConvSpec& spec) {
    return static_cast<int64_t>(spec.out_channels) * spec.in_channels *
               spec.kernel * spec.kernel +
           2 * static_cast<int64_t>(spec.out_channels);
  };
  int64_t count = conv_params(model::StemSpec(*this));
  for (int stage = 0; stage < 4; ++stage) {
    for (int block = 0; block < blocks_per_stage[stage]; ++block) {
      for (const model::ConvSpec& spec :
           model::BlockConvSpecs(*this, stage, block))
        count += conv_params(spec);
      if (auto shortcut = model::ShortcutSpec(*this, stage, block))
        count += conv_params(*shortcut);
    }
  }
  count += static_cast<int64_t>(embedding_dim) * PooledDim() + embedding_dim;
  return count;
}

namespace model {

ConvSpec StemSpec(const ResNetArchitecture& architecture) {
  return ConvSpec{architecture.base_channels, 1, 3, 1, 1};
}

namespace {

// Channels entering stage `stage` (before its first block).
int StageInputChannels(const ResNetArchitecture& architecture, int stage) {
  return stage == 0 ? architecture.base_channels
                    : architecture.StageChannels(stage - 1);
}

int BlockInputChannels(const ResNetArchitecture& architecture, int stage,
                       int block) {
  return block == 0 ? StageInputChannels(architecture, stage)
                    : architecture.StageChannels(stage);
}

int BlockStride(int stage, int block) {
  return stage > 0 && block == 0 ? 2 : 1;
}

}  // namespace

std::vector<ConvSpec> BlockConvSpecs(const ResNetArchitecture& architecture,
                                     int stage, int block) {
  const int planes = architecture.base_channels << stage;
  const int in = BlockInputChannels(architecture, stage, block);
  const int stride = BlockStride(stage, block);
  if (architecture.block == ResidualBlockKind::kBasic) {
    return {ConvSpec{planes, in, 3, stride, 1},
            ConvSpec{planes, planes, 3, 1, 1}};
  }
  return {ConvSpec{planes, in, 1, 1, 0}, ConvSpec{planes, planes, 3, stride, 1},
          ConvSpec{planes * architecture.Expansion(), planes, 1, 1, 0}};
}

std::optional<ConvSpec> ShortcutSpec(const ResNetArchitecture& architecture,
                                     int stage, int block) {
  const int in = BlockInputChannels(architecture, stage, block);
  const int out = architecture.StageChannels(stage);
  const int stride = BlockStride(stage, block);
  if (stride == 1 && in == out) return std::nullopt;
  return ConvSpec{out, in, 1, stride, 0};
}

std::string ArchitectureName(ResidualBlockKind block,
                             const std::array<int, 4>& blocks_per_stage) {
  int64_t blocks = 0;
  for (int count : blocks_per_stage) blocks += count;
  const int64_t convs_per_block = block == ResidualBlockKind::kBasic ? 2 : 3;
  return "ResNet" + std::to_string(convs_per_block * blocks + 2);
}

}  // namespace model
}  // namespace voxprint
