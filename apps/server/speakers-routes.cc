#include "speakers-routes.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/speaker-naming.h"
#include "common/speakers-json.h"
#include "route-helpers.h"

namespace voxprint::server {

namespace {

using nlohmann::json;

std::string Text(const Params& params, const std::string& name) {
  return TextParam(params, name).value_or("");
}

// The audio parts (field "file"); 400 when there are none.
std::vector<std::shared_ptr<Upload>> AudioParts(ApiRequest& request,
                                                size_t at_most) {
  std::vector<std::shared_ptr<Upload>> parts;
  for (Upload& upload : request.uploads) {
    if (upload.field != "file" && upload.field != "body")
      throw Error(ErrorCode::kInvalidArgument,
                  "unexpected file field '" + upload.field.substr(0, 40) +
                      "': send audio as field 'file'");
    parts.push_back(std::make_shared<Upload>(std::move(upload)));
  }
  if (parts.empty() || parts.size() > at_most)
    throw Error(
        ErrorCode::kUnsupportedInput,
        "send " +
            std::string(at_most == 1 ? "one audio file"
                                     : "1 to " + std::to_string(at_most) +
                                           " audio files") +
            " as multipart field 'file'");
  return parts;
}

}  // namespace

SpeakerRoutes::SpeakerRoutes(Routes& routes, std::string db)
    : routes_(routes), db_(std::move(db)) {}

std::shared_ptr<SpeakerStore> SpeakerRoutes::Store() {
  std::lock_guard lock(mutex_);
  if (store_) return store_;
  const std::shared_ptr<const Extractor> extractor = routes_.CurrentExtractor();
  if (!extractor)
    throw Error(ErrorCode::kBackendUnavailable, "the model is still loading");
  if (extractor->Model().sha256.empty())
    throw Error(ErrorCode::kInternal,
                "the speakers store needs the model's SHA-256, and this "
                "server loaded the model without it");
  SpeakerStoreOptions options;
  options.location = db_;
  options.model_sha256 = extractor->Model().sha256;
  options.embedding_dim = extractor->EmbeddingDim();
  store_ = SpeakerStore::Open(options);
  return store_;
}

std::shared_ptr<const SpeechMeter> SpeakerRoutes::Meter() {
  std::lock_guard lock(mutex_);
  if (!meter_) meter_ = std::make_shared<const SpeechMeter>();
  return meter_;
}

ApiResponse SpeakerRoutes::List() {
  return Guarded([&] {
    const std::shared_ptr<SpeakerStore> store = Store();
    json speakers = json::array();
    for (const SpeakerInfo& info : store->List())
      speakers.push_back(apps::SpeakerInfoToJson(info));
    ApiResponse response;
    response.body = {{"speakers", speakers},
                     {"model_sha256", store->model_sha256()},
                     {"recommended_speech_s", kRecommendedSpeechSeconds}};
    return response;
  });
}

ApiResponse SpeakerRoutes::Remove(const std::string& name) {
  return Guarded([&] {
    Store()->Remove(name);
    ApiResponse response;
    response.body = {{"removed", name}};
    return response;
  });
}

SpeakerNamer SpeakerRoutes::Namer(double threshold) {
  return apps::NamerFromStore(Store(), threshold);
}

ApiResponse SpeakerRoutes::Enroll(ApiRequest request) {
  return Guarded([&] {
    const std::string name = Text(request.params, "name");
    ValidateSpeakerName(name);
    const std::string metadata = Text(request.params, "metadata");
    const std::string append_text = Text(request.params, "append");
    if (!append_text.empty() && append_text != "true" && append_text != "false")
      throw BadParameter("append", "must be 'true' or 'false'");
    const bool append = append_text == "true";
    const std::shared_ptr<SpeakerStore> store = Store();
    if (!append) {
      // 409 before any embedding is computed (the store checks again).
      try {
        store->Get(name);
        throw Error(ErrorCode::kAlreadyExists,
                    "speaker \"" + name +
                        "\" exists already (append=true adds recordings)");
      } catch (const Error& error) {
        if (error.code() != ErrorCode::kNotFound) throw;
      }
    }
    auto parts = AudioParts(request, 64);
    const std::shared_ptr<const SpeechMeter> meter = Meter();
    return routes_.RunOnPool(request, [store, meter, parts, name, metadata,
                                       append](const Extractor& extractor,
                                               const CancelToken& cancel) {
      std::vector<Enrollment> enrollments;
      json added = json::array();
      for (const auto& part : parts) {
        SpeechMeasure measure;
        enrollments.push_back(
            PrepareEnrollment(extractor, *meter, UploadBytes(*part),
                              part->filename, &measure, cancel));
        added.push_back(apps::EnrollmentToJson(enrollments.back(), measure));
      }
      cancel.ThrowIfCancelled("enrollment");
      const SpeakerInfo info =
          store->Enroll(name, enrollments, metadata, append);
      ApiResponse response;
      response.status = 201;
      response.body = apps::EnrollmentReportToJson(info, added);
      return response;
    });
  });
}

ApiResponse SpeakerRoutes::Identify(ApiRequest request) {
  return Guarded([&] {
    const double threshold = CosineThresholdParam(request.params, "threshold");
    const double top_k = NumberParam(request.params, "top_k").value_or(5);
    if (top_k < 1 || top_k > 1e6 || top_k != std::floor(top_k))
      throw BadParameter("top_k", "must be a whole number from 1 to 1000000");
    const std::shared_ptr<SpeakerStore> store = Store();
    auto parts = AudioParts(request, 64);
    return routes_.RunOnPool(
        request, [store, parts, threshold, top_k](const Extractor& extractor,
                                                  const CancelToken& cancel) {
          EmbedRequest whole;
          whole.cancel = cancel;
          json results = json::array();
          for (const auto& part : parts) {
            const EmbeddingResult result =
                extractor.EmbedBytes(UploadBytes(*part), part->filename, whole);
            json item = apps::IdentificationToJson(store->Identify(
                result.embedding, static_cast<int>(top_k), threshold));
            item["path"] = result.source;
            item["duration_s"] = result.duration_s;
            results.push_back(std::move(item));
          }
          ApiResponse response;
          response.body = {{"results", results},
                           {"threshold", threshold},
                           {"score_scale", kRawCosineScale},
                           {"speakers", store->Size()}};
          return response;
        });
  });
}

ApiResponse SpeakerRoutes::Verify(ApiRequest request) {
  return Guarded([&] {
    const std::string name = Text(request.params, "name");
    const double threshold = CosineThresholdParam(request.params, "threshold");
    const std::shared_ptr<SpeakerStore> store = Store();
    store->Get(name);  // 404 before the embedding
    auto parts = AudioParts(request, 1);
    return routes_.RunOnPool(
        request, [store, parts, name, threshold](const Extractor& extractor,
                                                 const CancelToken& cancel) {
          EmbedRequest whole;
          whole.cancel = cancel;
          const EmbeddingResult result = extractor.EmbedBytes(
              UploadBytes(*parts[0]), parts[0]->filename, whole);
          ApiResponse response;
          response.body = apps::VerificationToJson(
              store->Verify(name, result.embedding, threshold));
          response.body["path"] = result.source;
          response.body["duration_s"] = result.duration_s;
          return response;
        });
  });
}

}  // namespace voxprint::server

namespace voxprint::server {

namespace {

constexpr const char* kSpeakersPaths = R"json({
  "/api/speakers": {
    "get": {
      "summary": "The enrolled speakers",
      "responses": {
        "200": {"description": "{speakers: [{name, metadata?, created_at, updated_at, enrollments, duration_s, speech_s}], model_sha256, recommended_speech_s}", "content": {"application/json": {"schema": {"type": "object"}}}},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "500": {"$ref": "#/components/responses/Internal"},
        "503": {"$ref": "#/components/responses/Busy"}
      }
    },
    "post": {
      "summary": "Enroll a speaker from recordings (multipart: name, file parts, optional metadata and append)",
      "description": "Each recording is embedded and its speech measured (Silero VAD when its model is installed, else energy). The answer gives the seconds of speech collected, progress toward the recommended 20 s, and warnings (too_short, silence, clipping, not_enough_speech). A name that exists is 409 unless append=true adds the recordings to it.",
      "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 128},
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "metadata": {"type": "string", "description": "a JSON object"},
        "append": {"type": "boolean", "default": false}}, "required": ["name", "file"]}}}},
      "responses": {
        "201": {"description": "{speaker, added: [{source, audio_sha256, duration_s, speech_s, speech_method, clipped_fraction, warnings}], speech_s, recommended_speech_s, progress, warnings}", "content": {"application/json": {"schema": {"type": "object"}}}},
        "400": {"$ref": "#/components/responses/BadInput"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "409": {"$ref": "#/components/responses/Conflict"},
        "413": {"$ref": "#/components/responses/TooLarge"},
        "422": {"$ref": "#/components/responses/BadParameter"},
        "500": {"$ref": "#/components/responses/Internal"},
        "503": {"$ref": "#/components/responses/Busy"},
        "504": {"$ref": "#/components/responses/Timeout"}
      }
    }
  },
  "/api/speakers/{name}": {
    "delete": {
      "summary": "Remove a speaker and its enrollments",
      "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
      "responses": {
        "200": {"description": "{removed: name}", "content": {"application/json": {"schema": {"type": "object"}}}},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "404": {"$ref": "#/components/responses/NotFound"},
        "500": {"$ref": "#/components/responses/Internal"},
        "503": {"$ref": "#/components/responses/Busy"}
      }
    }
  },
  "/api/identify": {
    "post": {
      "summary": "Who is speaking? Open-set identification of each uploaded file",
      "description": "Scores are raw cosine similarities in [-1, 1] (not (cos+1)/2) against each speaker's voiceprint (the normalised mean of its normalised enrollment embeddings). 'speaker' is the best candidate when its score reaches the threshold, else null (unknown).",
      "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "top_k": {"type": "integer", "default": 5},
        "threshold": {"type": "number", "default": 0.7}}, "required": ["file"]}}}},
      "responses": {
        "200": {"description": "{results: [{path, duration_s, speaker (null: unknown), unknown, threshold, score_scale, candidates: [{name, score}]}], threshold, score_scale, speakers}", "content": {"application/json": {"schema": {"type": "object"}}}},
        "400": {"$ref": "#/components/responses/BadInput"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "413": {"$ref": "#/components/responses/TooLarge"},
        "422": {"$ref": "#/components/responses/BadParameter"},
        "500": {"$ref": "#/components/responses/Internal"},
        "503": {"$ref": "#/components/responses/Busy"},
        "504": {"$ref": "#/components/responses/Timeout"}
      }
    }
  },
  "/api/verify": {
    "post": {
      "summary": "Is this the named speaker? (multipart: name, one file, optional threshold)",
      "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
        "name": {"type": "string"},
        "file": {"type": "string", "format": "binary"},
        "threshold": {"type": "number", "default": 0.7}}, "required": ["name", "file"]}}}},
      "responses": {
        "200": {"description": "{name, score (raw cosine), threshold, accepted, score_scale, path, duration_s}", "content": {"application/json": {"schema": {"type": "object"}}}},
        "400": {"$ref": "#/components/responses/BadInput"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "404": {"$ref": "#/components/responses/NotFound"},
        "422": {"$ref": "#/components/responses/BadParameter"},
        "500": {"$ref": "#/components/responses/Internal"},
        "503": {"$ref": "#/components/responses/Busy"},
        "504": {"$ref": "#/components/responses/Timeout"}
      }
    }
  }
})json";

constexpr const char* kSpeakersResponses = R"json({
  "NotFound": {"description": "No speaker of that name (not_found)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
  "Conflict": {"description": "A speaker of that name exists already (already_exists)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
})json";

}  // namespace

void AddSpeakersToOpenApi(nlohmann::json& document) {
  document["paths"].update(nlohmann::json::parse(kSpeakersPaths));
  document["components"]["responses"].update(
      nlohmann::json::parse(kSpeakersResponses));
}

}  // namespace voxprint::server
