// The server's API, free of any HTTP library: plain request structs in,
// status + JSON out. http.cc translates sockets to these structs and back.
//
// Every route catches everything: a route never throws, and a failure of one
// request never touches another. Inference runs on the WorkPool; a route
// waits for its job at most ServerOptions::request_timeout_s. Each job
// carries a CancelToken (EmbedRequest::cancel) that fires when that wait
// ends without a result: timeout, client gone, or server shutting down.
//
// Thread safety: all routes may be called concurrently.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "server.h"
#include "voxprint/diarizer.h"
#include "voxprint/error.h"
#include "voxprint/extractor.h"
#include "work-pool.h"

namespace voxprint::server {

// One uploaded file: a multipart part, or the whole body of a raw upload.
struct Upload {
  std::string field;         // form field ("file", "a", "b"); "body" if raw
  std::string filename;      // client's name for it, used in results/errors
  std::string content_type;  // as sent; informative only (content decides)
  std::string bytes;
};

struct ApiRequest {
  // Query-string parameters and multipart text fields (fields win).
  std::map<std::string, std::string> params;
  std::vector<Upload> uploads;
  // The workers + queue place taken for this request before its body was
  // read (Routes::Admit); empty: the route takes one itself.
  std::shared_ptr<WorkPool::Slot> slot;
  // True once the client has gone away; polled while the job runs, which is
  // then cancelled. Empty: never.
  std::function<bool()> client_gone;
};

struct ApiResponse {
  int status = 200;
  nlohmann::json body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// {"error": code, "detail": detail} with `status`.
ApiResponse ErrorResponse(int status, const std::string& code,
                          const std::string& detail);
// HTTP status for a library error: 422 invalid argument, 400 unsupported or
// corrupt input, 413 resource limit, 503 backend unavailable, 500 otherwise.
int HttpStatusFor(ErrorCode code);

// The server's knobs after "auto" values are resolved (see RunServer).
struct RouteLimits {
  int workers = 1;
  int queue = 16;
  size_t max_upload_bytes = 50u << 20;
  double max_audio_seconds = 1800.0;
  double request_timeout_s = 600.0;
  bool auth_required = false;
};

class Routes {
 public:
  explicit Routes(const RouteLimits& limits);
  ~Routes();

  // Installs the loaded model; until then the API answers 503 "loading".
  void SetExtractor(std::shared_ptr<const Extractor> extractor);
  bool Ready() const;

  // Takes a workers + queue place for a request about to upload audio, from
  // its headers alone; nullptr and *refusal (503 loading, busy or shutting
  // down, with Retry-After) when there is none.
  std::shared_ptr<WorkPool::Slot> Admit(ApiResponse* refusal);
  // Shutdown: cancels every job, running or queued, and answers every
  // request from now on with 503 "shutting_down".
  void CancelAll();

  // POST /api/embed: uploads named "file" (or one raw body); params window,
  // duration, step, start, end.
  ApiResponse Embed(ApiRequest request);
  // POST /api/compare: uploads "a" and "b"; param threshold.
  ApiResponse Compare(ApiRequest request);
  // POST /api/diarize: one upload "file" (or a raw body); params
  // num_speakers, min_speakers, max_speakers, clustering, threshold, window,
  // step, and name_speakers with speaker_threshold, which name the clusters
  // after enrolled speakers through `namer_for(speaker_threshold)`
  // (diarize-routes.cc).
  using NamerFactory = std::function<SpeakerNamer(double threshold)>;
  ApiResponse Diarize(ApiRequest request, const NamerFactory& namer_for);
  // GET /api/model.
  ApiResponse Model() const;
  // GET /healthz: 200 {"status":"ok"} or 503 {"status":"loading"}.
  ApiResponse Health() const;
  // GET /api/openapi.json.
  ApiResponse OpenApi() const;

 private:
  friend class SpeakerRoutes;  // its routes run on the same pool
  using Work = std::function<ApiResponse(const Extractor&, const CancelToken&)>;
  // Runs `work` on the pool in the request's slot (or a new one: 503 +
  // Retry-After when the pool is full) and waits for it, cancelling it on
  // timeout (504), client gone or shutdown (503).
  ApiResponse RunOnPool(ApiRequest& request, Work work);
  std::shared_ptr<const Extractor> CurrentExtractor() const;
  std::string RetryAfterSeconds() const;

  const RouteLimits limits_;
  mutable std::mutex mutex_;
  std::shared_ptr<const Extractor> extractor_;
  nlohmann::json model_json_;
  // Recent job duration, for the Retry-After estimate.
  std::atomic<double> recent_job_s_{1.0};
  // Tokens of the jobs being waited for, and whether CancelAll was called;
  // both under mutex_.
  std::list<CancelToken> waiting_;
  bool shutting_down_ = false;
  // Declared last, so destroyed first: it finishes the accepted jobs while
  // everything they use is still alive.
  WorkPool pool_;
};

}  // namespace voxprint::server
