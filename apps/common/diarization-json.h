// Diarization output shared by `voxprint diarize` and POST /api/diarize.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "voxprint/diarizer.h"

namespace voxprint::apps {

// {"path", "duration_s", "speech_s", "num_windows", "clustering",
//  "processing_s", "segments": [{"start_s", "end_s", "speaker"}],
//  "speakers": [{"label", "speech_s", "windows", "centroid", ["name",
//  "similarity"]}]}
nlohmann::json DiarizationToJson(const Diarization& diarization);

// "path,start_s,end_s,speaker" rows (with `header`, the header line first).
std::string DiarizationCsv(const Diarization& diarization, bool header);

// The RTTM uri of an input: its file name without directory and extension.
std::string RttmUri(const std::string& path);

}  // namespace voxprint::apps
