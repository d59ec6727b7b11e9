// JSON encoding shared by the CLI and the server, so that `voxprint embed`
// and POST /api/embed print the same documents.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "voxprint/extractor.h"

namespace voxprint::apps {

// {"path", "duration_s", "sample_rate_hz", "channels", "codec", "container",
//  "mode", "embedding" | "windows": [{"start_s","end_s","embedding"}],
//  "warnings": [{"code","message"}]}; a zero-padded window also has
//  "padded": true and "covered_end_s" (where its audio ends).
nlohmann::json EmbeddingResultToJson(const EmbeddingResult& result);

// [{"code", "message"}, ...] (an empty array when there are none).
nlohmann::json WarningsToJson(const std::vector<ResultWarning>& warnings);

// What `voxprint info` and GET /api/model print.
nlohmann::json ModelInfoToJson(const Extractor& extractor);

// {"similarity", "threshold", "same_speaker"}; ValidateThreshold first.
nlohmann::json ComparisonToJson(double similarity, double threshold);

// Throws kInvalidArgument unless `threshold` is in [-1, 1] (NaN is not).
void ValidateThreshold(double threshold);

// Serialises for output. File names are not always valid UTF-8; invalid
// bytes become U+FFFD instead of failing the whole document.
std::string DumpJson(const nlohmann::json& json, int indent = 2);

}  // namespace voxprint::apps
