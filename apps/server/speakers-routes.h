// The speakers API: GET/POST /api/speakers, DELETE /api/speakers/{name},
// POST /api/identify and POST /api/verify, over a SpeakerStore. Embedding
// runs on the Routes' work pool (same queue, limits, timeouts and errors as
// /api/embed); the store's short writes are serialised, so identification
// goes on while enrollments are written (with --workers >= 2 the embeddings
// of both run at once too).
#pragma once

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "routes.h"
#include "voxprint/diarizer.h"
#include "voxprint/speakers.h"

namespace voxprint::server {

class SpeakerRoutes {
 public:
  // `db`: the store's file ("" = DefaultSpeakerStorePath()); opened on the
  // first speakers request once the model is loaded (its SHA-256 must match
  // the store's).
  SpeakerRoutes(Routes& routes, std::string db);

  ApiResponse List();                           // GET /api/speakers
  ApiResponse Enroll(ApiRequest request);       // POST /api/speakers
  ApiResponse Remove(const std::string& name);  // DELETE /api/speakers/{name}
  ApiResponse Identify(ApiRequest request);     // POST /api/identify
  ApiResponse Verify(ApiRequest request);       // POST /api/verify

  // Names diarized clusters after this store's speakers (POST /api/diarize
  // with name_speakers); opens the store as the routes above do.
  SpeakerNamer Namer(double threshold);

 private:
  // The open store; kIoError/kModelError when it cannot be opened, 503
  // "loading" (as kBackendUnavailable) before the model is.
  std::shared_ptr<SpeakerStore> Store();
  std::shared_ptr<const SpeechMeter> Meter();

  Routes& routes_;
  const std::string db_;
  std::mutex mutex_;
  std::shared_ptr<SpeakerStore> store_;
  std::shared_ptr<const SpeechMeter> meter_;
};

// Adds the routes above to the OpenAPI document (paths and the 404/409
// responses).
void AddSpeakersToOpenApi(nlohmann::json& document);

}  // namespace voxprint::server
