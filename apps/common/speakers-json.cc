#include "common/speakers-json.h"

#include <algorithm>

namespace voxprint::apps {

const char* ScoreScale(bool as_norm) {
  return as_norm ? kAsNormScale : kRawCosineScale;
}

nlohmann::json SpeakerInfoToJson(const SpeakerInfo& info) {
  nlohmann::json json = {{"name", info.name},
                         {"created_at", info.created_at},
                         {"updated_at", info.updated_at},
                         {"enrollments", info.enrollments},
                         {"duration_s", info.duration_s},
                         {"speech_s", info.speech_s}};
  if (!info.metadata_json.empty())
    json["metadata"] =
        nlohmann::json::parse(info.metadata_json, nullptr, false);
  return json;
}

nlohmann::json EnrollmentToJson(const Enrollment& enrollment,
                                const SpeechMeasure& measure) {
  return {{"source", enrollment.source},
          {"audio_sha256", enrollment.audio_sha256},
          {"duration_s", enrollment.duration_s},
          {"speech_s", enrollment.speech_s},
          {"speech_method", measure.method},
          {"clipped_fraction", measure.clipped_fraction},
          {"warnings", measure.warnings}};
}

nlohmann::json EnrollmentReportToJson(const SpeakerInfo& speaker,
                                      const nlohmann::json& added) {
  nlohmann::json warnings = nlohmann::json::array();
  if (speaker.speech_s < kRecommendedSpeechSeconds)
    warnings.push_back("not_enough_speech");
  return {
      {"speaker", SpeakerInfoToJson(speaker)},
      {"added", added},
      {"speech_s", speaker.speech_s},
      {"recommended_speech_s", kRecommendedSpeechSeconds},
      {"progress", std::min(1.0, speaker.speech_s / kRecommendedSpeechSeconds)},
      {"warnings", warnings}};
}

nlohmann::json IdentificationToJson(const Identification& result) {
  nlohmann::json candidates = nlohmann::json::array();
  for (const SpeakerCandidate& candidate : result.candidates)
    candidates.push_back(
        {{"name", candidate.name}, {"score", candidate.score}});
  return {{"speaker", result.unknown ? nlohmann::json(nullptr)
                                     : nlohmann::json(result.speaker)},
          {"unknown", result.unknown},
          {"threshold", result.threshold},
          {"score_scale", ScoreScale(result.as_norm)},
          {"candidates", candidates}};
}

nlohmann::json VerificationToJson(const Verification& result) {
  return {{"name", result.name},
          {"score", result.score},
          {"threshold", result.threshold},
          {"accepted", result.accepted},
          {"score_scale", ScoreScale(result.as_norm)}};
}

}  // namespace voxprint::apps
