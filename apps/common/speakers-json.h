// JSON for the speakers store, shared by the CLI and the server.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "voxprint/speakers.h"

namespace voxprint::apps {

// {"name","metadata"?,"created_at","updated_at","enrollments","duration_s",
//  "speech_s"}
nlohmann::json SpeakerInfoToJson(const SpeakerInfo& info);

// {"source","duration_s","speech_s","speech_method","clipped_fraction",
//  "warnings"}
nlohmann::json EnrollmentToJson(const Enrollment& enrollment,
                                const SpeechMeasure& measure);

// Enrollment feedback: the speaker, what was added, progress toward the
// recommended seconds of speech, and warnings.
nlohmann::json EnrollmentReportToJson(const SpeakerInfo& speaker,
                                      const nlohmann::json& added);

// {"speaker" (null: unknown), "unknown", "threshold", "score_scale",
//  "candidates": [{"name","score"}]}
nlohmann::json IdentificationToJson(const Identification& result);

// {"name","score","threshold","accepted","score_scale"}
nlohmann::json VerificationToJson(const Verification& result);

const char* ScoreScale(bool as_norm);

}  // namespace voxprint::apps
