// What the speakers stores (SQLite, PostgreSQL) share: checks, times and the
// export format.
#include "speakers/store-common.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "voxprint/error.h"

namespace voxprint {

std::string DefaultSpeakerStorePath() {
  if (const char* db = std::getenv("VOXPRINT_DB"); db && *db) return db;
  std::filesystem::path base;
  if (const char* data = std::getenv("XDG_DATA_HOME"); data && *data) {
    base = data;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    base = std::filesystem::path(home) / ".local" / "share";
  } else {
    throw Error(ErrorCode::kInvalidArgument,
                "no place for the speakers store: set --db, $VOXPRINT_DB, "
                "$XDG_DATA_HOME or $HOME");
  }
  return (base / "voxprint" / "speakers.db").string();
}

namespace {
constexpr size_t kMaxMetadataBytes = 65536;
}  // namespace

std::string NowIso8601() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      now.time_since_epoch())
                      .count() %
                  1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", text, static_cast<int>(ms));
  return out;
}

void CheckEmbedding(std::span<const float> embedding, int dim,
                    const std::string& what) {
  if (embedding.size() != static_cast<size_t>(dim))
    throw Error(ErrorCode::kInvalidArgument,
                what + ": embedding of size " +
                    std::to_string(embedding.size()) + ", the store holds " +
                    std::to_string(dim));
  double norm = 0.0;
  for (const float x : embedding) {
    if (!std::isfinite(x))
      throw Error(ErrorCode::kInvalidArgument,
                  what + ": embedding holds NaN or infinite values");
    norm += static_cast<double>(x) * x;
  }
  if (norm == 0.0)
    throw Error(ErrorCode::kInvalidArgument, what + ": embedding is all zeros");
}

void CheckMetadata(const std::string& metadata) {
  if (metadata.empty()) return;
  if (metadata.size() > kMaxMetadataBytes)
    throw Error(ErrorCode::kInvalidArgument,
                "speaker metadata is longer than 64 KiB");
  const nlohmann::json json = nlohmann::json::parse(metadata, nullptr, false);
  if (json.is_discarded() || !json.is_object())
    throw Error(ErrorCode::kInvalidArgument,
                "speaker metadata must be a JSON object");
}

std::string ExportDocument(SpeakerStore& store) {
  nlohmann::json speakers = nlohmann::json::array();
  for (const SpeakerInfo& info : store.List()) {
    nlohmann::json enrollments = nlohmann::json::array();
    for (const Enrollment& e : store.Enrollments(info.name))
      enrollments.push_back({{"source", e.source},
                             {"audio_sha256", e.audio_sha256},
                             {"duration_s", e.duration_s},
                             {"speech_s", e.speech_s},
                             {"created_at", e.created_at},
                             {"embedding", e.embedding}});
    nlohmann::json speaker = {{"name", info.name},
                              {"created_at", info.created_at},
                              {"enrollments", std::move(enrollments)}};
    if (!info.metadata_json.empty())
      speaker["metadata"] = nlohmann::json::parse(info.metadata_json);
    speakers.push_back(std::move(speaker));
  }
  const nlohmann::json document = {{"format", "voxprint-voiceprints"},
                                   {"version", 1},
                                   {"model_sha256", store.model_sha256()},
                                   {"embedding_dim", store.embedding_dim()},
                                   {"speakers", std::move(speakers)}};
  return document.dump(-1, ' ', false,
                       nlohmann::json::error_handler_t::replace);
}

std::vector<IncomingSpeaker> ParseExportDocument(
    const std::string& text, const std::string& model_sha256, int dim) {
  const nlohmann::json document = nlohmann::json::parse(text, nullptr, false);
  const auto bad = [](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument,
                 "not a voxprint voiceprints export: " + why);
  };
  if (document.is_discarded() || !document.is_object()) throw bad("not JSON");
  const auto text_field = [&](const char* key) {
    const auto found = document.find(key);
    return found != document.end() && found->is_string()
               ? found->get<std::string>()
               : std::string();
  };
  if (text_field("format") != "voxprint-voiceprints")
    throw bad("no \"format\": \"voxprint-voiceprints\"");
  if (!document.contains("version") || document["version"] != 1)
    throw bad("unknown version (this build reads version 1)");
  const std::string model = text_field("model_sha256");
  if (model.empty()) throw bad("no model_sha256");
  if (model != model_sha256)
    throw Error(ErrorCode::kModelError,
                "the export holds embeddings of the model with SHA-256 " +
                    model + ", this store those of the model with SHA-256 " +
                    model_sha256 + "; nothing was imported");
  if (!document.contains("speakers") || !document["speakers"].is_array())
    throw bad("no speakers list");
  std::vector<IncomingSpeaker> incoming;
  try {
    for (const nlohmann::json& speaker : document["speakers"]) {
      IncomingSpeaker in;
      in.name = speaker.at("name").get<std::string>();
      ValidateSpeakerName(in.name);
      if (speaker.contains("metadata"))
        in.metadata = speaker["metadata"].dump();
      CheckMetadata(in.metadata);
      for (const nlohmann::json& e : speaker.at("enrollments")) {
        Enrollment enrollment;
        enrollment.source = e.at("source").get<std::string>();
        enrollment.audio_sha256 = e.at("audio_sha256").get<std::string>();
        enrollment.duration_s = e.at("duration_s").get<double>();
        enrollment.speech_s = e.at("speech_s").get<double>();
        enrollment.created_at = e.value("created_at", "");
        enrollment.embedding = e.at("embedding").get<std::vector<float>>();
        CheckEmbedding(enrollment.embedding, dim, in.name);
        in.enrollments.push_back(std::move(enrollment));
      }
      if (in.enrollments.empty())
        throw bad("speaker \"" + in.name + "\" has no enrollments");
      incoming.push_back(std::move(in));
    }
  } catch (const nlohmann::json::exception& error) {
    throw bad(error.what());
  }
  return incoming;
}

}  // namespace voxprint
