#include "result-json.h"

#include <cmath>
#include <string>

#include "voxprint/error.h"

namespace voxprint::apps {

namespace {

// NaN/inf are not JSON. The Extractor refuses embeddings that hold them
// (kInternal), so none should arrive; null keeps the document valid if one
// ever did.
nlohmann::json FloatsToJson(const std::vector<float>& values) {
  nlohmann::json array = nlohmann::json::array();
  for (float v : values) {
    if (std::isfinite(v))
      array.push_back(v);
    else
      array.push_back(nullptr);
  }
  return array;
}

const char* ModeName(WindowMode mode) {
  return mode == WindowMode::kWhole ? "whole" : "sliding";
}

}  // namespace

nlohmann::json EmbeddingResultToJson(const EmbeddingResult& result) {
  nlohmann::json json = {
      {"path", result.source},
      {"duration_s", result.duration_s},
      {"sample_rate_hz", result.audio.sample_rate_hz},
      {"channels", result.audio.channels},
      {"codec", result.audio.codec},
      {"container", result.audio.container},
      {"mode", ModeName(result.mode)},
  };
  if (result.mode == WindowMode::kWhole) {
    json["embedding"] = FloatsToJson(result.embedding);
  } else {
    nlohmann::json windows = nlohmann::json::array();
    for (const WindowEmbedding& window : result.windows) {
      nlohmann::json item = {{"start_s", window.start_s},
                             {"end_s", window.end_s}};
      // Only on padded windows, so that complete ones read as before.
      if (window.padded) {
        item["padded"] = true;
        item["covered_end_s"] = window.covered_end_s;
      }
      item["embedding"] = FloatsToJson(window.embedding);
      windows.push_back(std::move(item));
    }
    json["windows"] = std::move(windows);
    // Says the windows are the opt-in approximation, not the reference's.
    if (result.shared_trunk) json["shared_trunk"] = true;
  }
  json["warnings"] = WarningsToJson(result.warnings);
  return json;
}

nlohmann::json WarningsToJson(const std::vector<ResultWarning>& warnings) {
  nlohmann::json array = nlohmann::json::array();
  for (const ResultWarning& warning : warnings)
    array.push_back({{"code", warning.code}, {"message", warning.message}});
  return array;
}

nlohmann::json ModelInfoToJson(const Extractor& extractor) {
  const ModelInfo& model = extractor.Model();
  const ResNetArchitecture& arch = model.architecture;
  const FbankOptions& fbank = extractor.Fbank();
  const BackendInfo device = extractor.Device();
  return {
      {"architecture", arch.name},
      {"block",
       arch.block == ResidualBlockKind::kBasic ? "basic" : "bottleneck"},
      {"blocks_per_stage", arch.blocks_per_stage},
      {"base_channels", arch.base_channels},
      {"parameters", arch.ParameterCount()},
      {"embedding_dim", arch.embedding_dim},
      {"sample_rate_hz", fbank.sample_rate_hz},
      {"features",
       {{"type", "kaldi_fbank"},
        {"num_mel_bins", fbank.num_mel_bins},
        {"frame_length_ms", fbank.frame_length_ms},
        {"frame_shift_ms", fbank.frame_shift_ms},
        {"window", "hamming"},
        {"preemphasis", fbank.preemphasis},
        {"dither", 0.0},
        {"snip_edges", true},
        {"waveform_scale", fbank.waveform_scale},
        {"mean_normalization", "subtract mean over time"}}},
      {"pooling", "mean and unbiased standard deviation over time"},
      {"file",
       {{"path", model.path},
        {"format", ModelFormatName(model.format)},
        {"size_bytes", model.file_size_bytes},
        {"sha256", model.sha256},
        // ONNX has no checksum of its own: a flipped weight bit loads
        // unnoticed, so users compare sha256 with the publisher's.
        {"format_has_checksum", model.format_has_checksum}}},
      {"device",
       {{"name", device.name},
        {"index", device.device_index},
        {"threads", device.num_threads},
        {"precision", device.precision},
        {"description", device.description},
        {"choice", extractor.DeviceChoice()}}},
  };
}

nlohmann::json ComparisonToJson(double similarity, double threshold) {
  ValidateThreshold(threshold);
  return {{"similarity", similarity},
          {"threshold", threshold},
          {"same_speaker", similarity > threshold}};
}

void ValidateThreshold(double threshold) {
  if (!(threshold >= -1.0 && threshold <= 1.0))
    throw Error(ErrorCode::kInvalidArgument,
                "threshold " + std::to_string(threshold) +
                    " is out of range: it must be a cosine similarity in "
                    "[-1, 1]");
}

std::string DumpJson(const nlohmann::json& json, int indent) {
  return json.dump(indent, ' ', false,
                   nlohmann::json::error_handler_t::replace);
}

}  // namespace voxprint::apps
