#include "common/diarization-json.h"

#include <cstdio>
#include <filesystem>

namespace voxprint::apps {
namespace {

// Seconds with the millisecond precision RTTM carries.
std::string Millis(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", seconds);
  return text;
}

std::string CsvField(const std::string& value) {
  if (value.find_first_of(",\"\n\r") == std::string::npos) return value;
  std::string quoted = "\"";
  for (char c : value)
    quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

}  // namespace

nlohmann::json DiarizationToJson(const Diarization& diarization) {
  nlohmann::json segments = nlohmann::json::array();
  for (const SpeakerTurn& turn : diarization.turns)
    segments.push_back({{"start_s", turn.StartSeconds()},
                        {"end_s", turn.EndSeconds()},
                        {"speaker", diarization.speakers[turn.speaker].label}});
  nlohmann::json speakers = nlohmann::json::array();
  for (const DiarizedSpeaker& speaker : diarization.speakers) {
    nlohmann::json entry = {{"label", speaker.label},
                            {"speech_s", speaker.speech_s},
                            {"windows", speaker.windows},
                            {"centroid", speaker.centroid}};
    if (speaker.name) entry["name"] = *speaker.name;
    if (speaker.name_similarity) entry["similarity"] = *speaker.name_similarity;
    speakers.push_back(entry);
  }
  return {{"path", diarization.source},
          {"duration_s", diarization.duration_s},
          {"speech_s", diarization.speech_s},
          {"num_windows", diarization.num_windows},
          {"clustering", ClusteringMethodName(diarization.method)},
          {"processing_s", diarization.processing_s},
          {"segments", segments},
          {"speakers", speakers}};
}

std::string DiarizationCsv(const Diarization& diarization, bool header) {
  std::string rows = header ? "path,start_s,end_s,speaker\n" : "";
  const std::string path = CsvField(diarization.source);
  for (const SpeakerTurn& turn : diarization.turns)
    rows += path + "," + Millis(turn.StartSeconds()) + "," +
            Millis(turn.EndSeconds()) + "," +
            CsvField(diarization.speakers[turn.speaker].label) + "\n";
  return rows;
}

std::string RttmUri(const std::string& path) {
  const std::string stem = std::filesystem::path(path).stem().string();
  return stem.empty() ? "audio" : stem;
}

}  // namespace voxprint::apps
