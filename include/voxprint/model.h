// Model files: the three published formats of WeSpeaker's ResNet speaker
// embedding models, recognised by content.
//
//  - pyannote.audio `pytorch_model.bin` (torch.save zip, pickled checkpoint)
//  - WeSpeaker `avg_model.pt` (torch.save zip of a bare state dict)
//  - WeSpeaker `.onnx` runtime export (BatchNorm folded into Conv)
//
// Loading never executes anything from a file: pickles are interpreted by a
// restricted reader, and every size, offset and shape is checked.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace voxprint {

enum class ModelFormat { kPyannoteCheckpoint, kWespeakerCheckpoint, kOnnx };
const char* ModelFormatName(ModelFormat format);

enum class ResidualBlockKind { kBasic, kBottleneck };

// Shape of a WeSpeaker ResNet (ResNet34: basic blocks {3,4,6,3}, 32 base
// channels; ResNet152/221/293: bottleneck blocks with expansion 4).
struct ResNetArchitecture {
  std::string name = "ResNet34";
  ResidualBlockKind block = ResidualBlockKind::kBasic;
  std::array<int, 4> blocks_per_stage = {3, 4, 6, 3};
  int base_channels = 32;
  int feature_dim = 80;     // mel bins in
  int embedding_dim = 256;  // embedding out

  int Expansion() const { return block == ResidualBlockKind::kBasic ? 1 : 4; }
  // Output channels of stage s (0..3).
  int StageChannels(int stage) const {
    return base_channels * (1 << stage) * Expansion();
  }
  // Frequency rows after the three stride-2 stages (80 -> 10).
  int OutputFrequencyRows() const;
  // Length of the pooled statistics vector: 2 * channels * rows.
  int PooledDim() const { return 2 * StageChannels(3) * OutputFrequencyRows(); }
  // Trainable parameters of the original (unfolded) network, BatchNorm
  // scale/shift included: the number pyannote reports for the model.
  int64_t ParameterCount() const;
};

// What `voxprint info` reports about a loaded model file.
struct ModelInfo {
  std::string path;
  ModelFormat format = ModelFormat::kPyannoteCheckpoint;
  std::string sha256;  // of the file, lower-case hex
  int64_t file_size_bytes = 0;
  // Whether the format itself detects damaged weights. torch.save zips keep
  // a CRC-32 of every entry, which loading verifies: a flipped bit is
  // refused. ONNX has no checksum: a flipped weight bit loads unnoticed
  // (only comparing sha256 with the publisher's tells).
  bool format_has_checksum = false;
  ResNetArchitecture architecture;
};

}  // namespace voxprint
