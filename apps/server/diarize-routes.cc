// POST /api/diarize: who spoke when in one uploaded file. Same queue,
// limits, timeouts and errors as /api/embed (RunOnPool); the Silero VAD
// model is found as `voxprint diarize` finds it ($VOXPRINT_VAD_MODEL, the
// npm install, the installed copy) and loaded once, on the first request.
#include <chrono>
#include <memory>
#include <mutex>

#include "common/diarization-json.h"
#include "route-helpers.h"
#include "routes.h"
#include "voxprint/diarizer.h"

namespace voxprint::server {
namespace {

DiarizeRequest ParseDiarizeRequest(
    const std::map<std::string, std::string>& params) {
  DiarizeRequest request;
  if (auto method = TextParam(params, "clustering")) {
    if (*method != "ahc" && *method != "spectral")
      throw BadParameter("clustering", "must be 'ahc' or 'spectral', not '" +
                                           method->substr(0, 40) + "'");
    request.clustering.method = ParseClusteringMethod(*method);
  }
  if (auto threshold = NumberParam(params, "threshold"))
    request.clustering.threshold = *threshold;
  request.clustering.num_speakers = CountParam(params, "num_speakers");
  request.clustering.min_speakers = CountParam(params, "min_speakers");
  request.clustering.max_speakers = CountParam(params, "max_speakers");
  if (auto window = NumberParam(params, "window"))
    request.windows.window_s = *window;
  if (auto step = NumberParam(params, "step")) request.windows.step_s = *step;
  request.Validate();
  return request;
}

// The VAD, loaded on first use and kept; a failed load is retried by the
// next request (the file may be installed meanwhile).
std::shared_ptr<const VoiceActivityDetector> SharedVad() {
  static std::mutex mutex;
  static std::shared_ptr<const VoiceActivityDetector> vad;
  std::lock_guard<std::mutex> lock(mutex);
  if (!vad) vad = std::make_shared<const VoiceActivityDetector>(FindVadModel());
  return vad;
}

}  // namespace

ApiResponse Routes::Diarize(ApiRequest request, const NamerFactory& namer_for) {
  return Guarded([&] {
    DiarizeRequest parsed = ParseDiarizeRequest(request.params);
    const double speaker_threshold =
        CosineThresholdParam(request.params, "speaker_threshold");
    // The store opens (and is checked against the model) before any work.
    if (BoolParam(request.params, "name_speakers"))
      parsed.namer = namer_for(speaker_threshold);
    auto upload = std::make_shared<Upload>();
    int files = 0;
    for (Upload& part : request.uploads) {
      if (part.field != "file" && part.field != "body")
        throw Error(ErrorCode::kInvalidArgument,
                    "unexpected file field '" + part.field.substr(0, 40) +
                        "': send audio as field 'file'");
      *upload = std::move(part);
      ++files;
    }
    if (files != 1)
      return ErrorResponse(400, "missing_file",
                           "send exactly one audio file: multipart field "
                           "'file' or an audio/* body");
    AudioLimits audio_limits;
    audio_limits.max_duration_s = limits_.max_audio_seconds;
    return RunOnPool(
        request, [upload, parsed, audio_limits](const Extractor& extractor,
                                                const CancelToken& cancel) {
          const auto start = std::chrono::steady_clock::now();
          const std::shared_ptr<const VoiceActivityDetector> vad = SharedVad();
          DiarizeRequest cancellable = parsed;
          cancellable.cancel = cancel;
          const Diarizer diarizer(extractor, *vad, audio_limits);
          const Diarization diarization = diarizer.DiarizeBytes(
              UploadBytes(*upload), upload->filename, cancellable);
          nlohmann::json result = apps::DiarizationToJson(diarization);
          result["rttm"] =
              DiarizationRttm(diarization, apps::RttmUri(upload->filename));
          ApiResponse response;
          response.body = {
              {"results", nlohmann::json::array({result})},
              {"device", extractor.Device().name},
              {"processing_s", std::chrono::duration<double>(
                                   std::chrono::steady_clock::now() - start)
                                   .count()}};
          return response;
        });
  });
}

// The /api/diarize entry of the OpenAPI document.
nlohmann::json DiarizeOpenApi() {
  static const char* kPath = R"json({
  "post": {
    "summary": "Who spoke when: speaker diarization of one audio file",
    "description": "Speech found by Silero VAD v5, windows of 1.5 s every 0.75 s inside it embedded, clustered (agglomerative with pyannote 3.1's settings, or spectral as WeSpeaker), turns cut at the middle of overlapping windows with different speakers. Audio without speech gives no segments (not an error). Send one file as multipart field 'file' or as the body. Parameters in the query string or as multipart text fields (fields win). The same queue, limits and timeouts as /api/embed.",
    "parameters": [
      {"name": "num_speakers", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "Exactly this many speakers"},
      {"name": "min_speakers", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "At least this many speakers"},
      {"name": "max_speakers", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "At most this many speakers"},
      {"name": "clustering", "in": "query", "schema": {"type": "string", "enum": ["ahc", "spectral"], "default": "ahc"}},
      {"name": "threshold", "in": "query", "schema": {"type": "number", "default": 0.7045654963945799, "minimum": 0, "maximum": 2}, "description": "ahc: centroid distance between unit embeddings at which merging stops"},
      {"name": "window", "in": "query", "schema": {"type": "number", "default": 1.5, "minimum": 0.1, "maximum": 60}, "description": "Window length, seconds"},
      {"name": "step", "in": "query", "schema": {"type": "number", "default": 0.75, "minimum": 0.01}, "description": "Window step, seconds (at most the window)"},
      {"name": "name_speakers", "in": "query", "schema": {"type": "boolean", "default": false}, "description": "Name each speaker after the enrolled speaker (the server's store, --db) its voice is closest to, above speaker_threshold"},
      {"name": "speaker_threshold", "in": "query", "schema": {"type": "number", "default": 0.7, "minimum": -1, "maximum": 1}, "description": "Raw cosine a speaker's centroid must exceed to take an enrolled name"},
      {"$ref": "#/components/parameters/name"}
    ],
    "requestBody": {
      "required": true,
      "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
        "audio/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
      }
    },
    "responses": {
      "200": {
        "description": "Speaker turns and speakers",
        "content": {"application/json": {"schema": {"type": "object", "properties": {
          "results": {"type": "array", "items": {"type": "object", "properties": {
            "path": {"type": "string"}, "duration_s": {"type": "number"}, "speech_s": {"type": "number"},
            "num_windows": {"type": "integer"}, "clustering": {"type": "string"}, "processing_s": {"type": "number"},
            "segments": {"type": "array", "items": {"type": "object", "properties": {"start_s": {"type": "number"}, "end_s": {"type": "number"}, "speaker": {"type": "string"}}}},
            "speakers": {"type": "array", "items": {"type": "object", "properties": {"label": {"type": "string"}, "speech_s": {"type": "number"}, "windows": {"type": "integer"}, "centroid": {"type": "array", "items": {"type": "number"}}}}},
            "rttm": {"type": "string", "description": "The segments as RTTM lines (pyannote's format)"}}}},
          "device": {"type": "string"}, "processing_s": {"type": "number"}}}}}
      },
      "400": {"$ref": "#/components/responses/BadInput"},
      "401": {"$ref": "#/components/responses/Unauthorized"},
      "403": {"$ref": "#/components/responses/HostNotAllowed"},
      "408": {"$ref": "#/components/responses/TooSlow"},
      "413": {"$ref": "#/components/responses/TooLarge"},
      "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
      "422": {"$ref": "#/components/responses/BadParameter"},
      "500": {"$ref": "#/components/responses/Internal"},
      "503": {"$ref": "#/components/responses/Busy"},
      "504": {"$ref": "#/components/responses/Timeout"}
    }
  }
})json";
  return nlohmann::json::parse(kPath);
}

}  // namespace voxprint::server
