#include "routes.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <future>
#include <new>
#include <optional>
#include <span>

#include "common/result-json.h"
#include "openapi.h"
#include "route-helpers.h"

namespace voxprint::server {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// More parts than this in one request is a client bug, not a batch.
constexpr size_t kMaxFilesPerRequest = 64;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

EmbedRequest ParseEmbedRequest(
    const std::map<std::string, std::string>& params) {
  EmbedRequest request;
  const auto window = params.find("window");
  if (window != params.end() && window->second != "whole") {
    if (window->second != "sliding")
      throw BadParameter("window", "must be 'whole' or 'sliding', not '" +
                                       window->second.substr(0, 40) + "'");
    request.mode = WindowMode::kSliding;
  }
  // duration and step only mean something for sliding windows, but a bad
  // value is reported either way: a typo should not pass silently.
  if (auto duration = NumberParam(params, "duration"))
    request.window_duration_s = *duration;
  if (auto step = NumberParam(params, "step")) request.window_step_s = *step;
  if (request.mode == WindowMode::kSliding) {
    if (request.window_duration_s <= 0)
      throw BadParameter("duration", "must be > 0 seconds");
    if (request.window_step_s <= 0)
      throw BadParameter("step", "must be > 0 seconds");
  }
  request.shared_trunk = BoolParam(params, "shared_trunk");
  request.drop_partial = BoolParam(params, "drop_partial");
  request.start_s = NumberParam(params, "start");
  request.end_s = NumberParam(params, "end");
  if (request.start_s && *request.start_s < 0)
    throw BadParameter("start", "must be >= 0 seconds");
  if (request.end_s && *request.end_s <= 0)
    throw BadParameter("end", "must be > 0 seconds");
  if (request.start_s && request.end_s && *request.end_s <= *request.start_s)
    throw BadParameter("end", "must be after start");
  request.Validate();
  return request;
}

json Citations() {
  return json::array(
      {{{"short", "WeSpeaker"},
        {"text",
         "Hongji Wang, Chengdong Liang, Shuai Wang, Zhengyang Chen, Binbin "
         "Zhang, Xu Xiang, Yanlei Deng, Yanmin Qian. \"Wespeaker: A research "
         "and production oriented speaker embedding learning toolkit\". "
         "ICASSP 2023."}},
       {{"short", "pyannote.audio 2.1"},
        {"text",
         "Herv\u00e9 Bredin. \"pyannote.audio 2.1 speaker diarization "
         "pipeline: principle, benchmark, and recipe\". INTERSPEECH 2023."}}});
}

}  // namespace

ApiResponse ErrorResponse(int status, const std::string& code,
                          const std::string& detail) {
  ApiResponse response;
  response.status = status;
  response.body = {{"error", code}, {"detail", detail}};
  return response;
}

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 422;
    case ErrorCode::kUnsupportedInput:
    case ErrorCode::kCorruptInput:
      return 400;
    case ErrorCode::kResourceLimit:
      return 413;
    case ErrorCode::kBackendUnavailable:
      return 503;
    case ErrorCode::kModelError:
    case ErrorCode::kIoError:
    case ErrorCode::kInternal:
      return 500;
    case ErrorCode::kCancelled:  // the request's deadline passed
      return 504;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
      return 409;
  }
  return 500;
}

Routes::Routes(const RouteLimits& limits)
    : limits_(limits), pool_(limits.workers, limits.queue) {}

Routes::~Routes() = default;

void Routes::SetExtractor(std::shared_ptr<const Extractor> extractor) {
  json model = apps::ModelInfoToJson(*extractor);
  // The server's directory layout is none of the client's business.
  model["file"]["path"] =
      std::filesystem::path(model["file"]["path"].get<std::string>())
          .filename()
          .string();
  model["license"] = "CC-BY-4.0";
  model["source"] =
      "pyannote/wespeaker-voxceleb-resnet34-LM (WeSpeaker "
      "voxceleb_resnet34_LM)";
  model["citations"] = Citations();
  model["version"] = VOXPRINT_VERSION;
  model["server"] = {{"workers", limits_.workers},
                     {"queue", limits_.queue},
                     {"max_upload_bytes", limits_.max_upload_bytes},
                     {"max_audio_seconds", limits_.max_audio_seconds},
                     {"auth_required", limits_.auth_required}};
  std::lock_guard<std::mutex> lock(mutex_);
  model_json_ = std::move(model);
  extractor_ = std::move(extractor);
}

bool Routes::Ready() const { return CurrentExtractor() != nullptr; }

std::shared_ptr<const Extractor> Routes::CurrentExtractor() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return extractor_;
}

std::string Routes::RetryAfterSeconds() const {
  // Roughly when one queue slot frees up; whole seconds, at least one.
  const double s = recent_job_s_.load() * std::max(1, limits_.queue) /
                   std::max(1, limits_.workers);
  return std::to_string(static_cast<int>(std::clamp(std::ceil(s), 1.0, 60.0)));
}

std::shared_ptr<WorkPool::Slot> Routes::Admit(ApiResponse* refusal) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (shutting_down_) {
      *refusal =
          ErrorResponse(503, "shutting_down", "the server is shutting down");
      return nullptr;
    }
  }
  if (!CurrentExtractor()) {
    *refusal = ErrorResponse(503, "loading", "the model is still loading");
    refusal->headers.emplace_back("Retry-After", "1");
    return nullptr;
  }
  std::shared_ptr<WorkPool::Slot> slot = pool_.TryReserve();
  if (!slot) {
    *refusal = ErrorResponse(503, "busy",
                             "all " + std::to_string(limits_.workers) +
                                 " workers are busy and " +
                                 std::to_string(limits_.queue) +
                                 " requests are waiting; retry later");
    refusal->headers.emplace_back("Retry-After", RetryAfterSeconds());
  }
  return slot;
}

void Routes::CancelAll() {
  std::lock_guard<std::mutex> lock(mutex_);
  shutting_down_ = true;
  for (const CancelToken& token : waiting_) token.Cancel();
}

ApiResponse Routes::RunOnPool(ApiRequest& request, Work work) {
  std::shared_ptr<WorkPool::Slot> slot = std::move(request.slot);
  if (!slot) {
    ApiResponse refusal;
    slot = Admit(&refusal);
    if (!slot) return refusal;
  }
  std::shared_ptr<const Extractor> extractor = CurrentExtractor();
  const CancelToken cancel = CancelToken::Create();
  std::list<CancelToken>::iterator registration;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (shutting_down_)
      return ErrorResponse(503, "shutting_down", "the server is shutting down");
    registration = waiting_.insert(waiting_.end(), cancel);
  }
  struct Unregister {
    Routes* routes;
    std::list<CancelToken>::iterator registration;
    ~Unregister() {
      std::lock_guard<std::mutex> lock(routes->mutex_);
      routes->waiting_.erase(registration);
    }
  } unregister{this, registration};

  // Shared with the job, which may outlive this call until it notices the
  // cancellation.
  auto promise = std::make_shared<std::promise<ApiResponse>>();
  std::future<ApiResponse> future = promise->get_future();
  pool_.Submit(
      slot, [this, slot, promise, extractor, cancel, work = std::move(work)] {
        const Clock::time_point start = Clock::now();
        ApiResponse response =
            cancel.Cancelled()
                ? ErrorResponse(503, "cancelled", "cancelled before it started")
                : Guarded([&] { return work(*extractor, cancel); });
        if (!cancel.Cancelled())
          recent_job_s_.store(0.7 * recent_job_s_.load() +
                              0.3 * SecondsSince(start));
        slot->Release();
        promise->set_value(std::move(response));
      });

  // Polls for the result, the client and the shutdown; 100 ms is how late
  // a departed client or a shutdown is noticed.
  const auto deadline =
      Clock::now() +
      std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(limits_.request_timeout_s));
  for (;;) {
    const auto now = Clock::now();
    const auto wait = std::min<Clock::duration>(std::chrono::milliseconds(100),
                                                std::max(deadline - now, {}));
    // Only CancelAll cancels while this loop still waits (the cases below
    // return as they cancel), and a job stops within ~0.2 s once cancelled:
    // whichever of the two is seen first, the client learns of the shutdown.
    const bool ready = future.wait_for(wait) == std::future_status::ready;
    if (ready && !cancel.Cancelled()) return future.get();
    if (ready) {
      ApiResponse response = future.get();
      const bool stopped_by_cancel =
          response.body.is_object() &&
          response.body.value("error", "") == "cancelled";
      if (!stopped_by_cancel) return response;
    }
    if (cancel.Cancelled())  // by CancelAll
      return ErrorResponse(503, "shutting_down", "the server is shutting down");
    if (request.client_gone && request.client_gone()) {
      cancel.Cancel();
      return ErrorResponse(499, "client_gone",
                           "the client closed the connection");
    }
    if (Clock::now() >= deadline) {
      cancel.Cancel();
      char limit[32];
      std::snprintf(limit, sizeof(limit), "%g", limits_.request_timeout_s);
      return ErrorResponse(504, "timeout",
                           "the request took longer than " +
                               std::string(limit) +
                               " s, the server's limit; it was cancelled");
    }
  }
}

ApiResponse Routes::Embed(ApiRequest request) {
  return Guarded([&] {
    const EmbedRequest embed = ParseEmbedRequest(request.params);
    auto files = std::make_shared<std::vector<Upload>>();
    for (Upload& upload : request.uploads) {
      if (upload.field != "file" && upload.field != "body")
        throw Error(ErrorCode::kInvalidArgument,
                    "unexpected file field '" + upload.field.substr(0, 40) +
                        "': send audio as field 'file'");
      files->push_back(std::move(upload));
    }
    if (files->empty())
      return ErrorResponse(400, "missing_file",
                           "no audio: send multipart field(s) 'file' or an "
                           "audio/* body");
    if (files->size() > kMaxFilesPerRequest)
      return ErrorResponse(413, "too_many_files",
                           std::to_string(files->size()) +
                               " files in one request; at most " +
                               std::to_string(kMaxFilesPerRequest));
    return RunOnPool(request, [files, embed](const Extractor& extractor,
                                             const CancelToken& cancel) {
      EmbedRequest cancellable = embed;
      cancellable.cancel = cancel;
      const Clock::time_point start = Clock::now();
      // Several files: whole mode batches the network across them. The
      // first file that fails fails the request (documented contract).
      std::vector<std::span<const uint8_t>> buffers;
      std::vector<std::string> names;
      for (const Upload& upload : *files) {
        buffers.push_back(UploadBytes(upload));
        names.push_back(upload.filename);
      }
      json results = json::array();
      std::optional<Error> failure;
      extractor.EmbedBuffers(
          buffers, names, cancellable, [&](size_t, BatchOutcome&& outcome) {
            if (failure) return;
            if (outcome.error) {
              failure = std::move(outcome.error);
              return;
            }
            json item = apps::EmbeddingResultToJson(*outcome.result);
            item["processing_s"] = outcome.result->processing_s;
            results.push_back(std::move(item));
          });
      if (failure) throw *failure;
      ApiResponse response;
      response.body = {{"results", std::move(results)},
                       {"device", extractor.Device().name},
                       {"processing_s", SecondsSince(start)}};
      return response;
    });
  });
}

ApiResponse Routes::Compare(ApiRequest request) {
  return Guarded([&] {
    const double threshold = CosineThresholdParam(request.params, "threshold");
    auto a = std::make_shared<Upload>();
    auto b = std::make_shared<Upload>();
    int count_a = 0, count_b = 0;
    for (Upload& upload : request.uploads) {
      if (upload.field == "a") {
        *a = std::move(upload);
        ++count_a;
      } else if (upload.field == "b") {
        *b = std::move(upload);
        ++count_b;
      } else {
        throw Error(ErrorCode::kInvalidArgument,
                    "unexpected file field '" + upload.field.substr(0, 40) +
                        "': send fields 'a' and 'b'");
      }
    }
    if (count_a != 1 || count_b != 1)
      return ErrorResponse(400, "missing_file",
                           "send exactly one file as multipart field 'a' and "
                           "one as field 'b'");
    return RunOnPool(request, [a, b, threshold](const Extractor& extractor,
                                                const CancelToken& cancel) {
      const Clock::time_point start = Clock::now();
      EmbedRequest whole;
      whole.cancel = cancel;
      const EmbeddingResult result_a =
          extractor.EmbedBytes(UploadBytes(*a), a->filename, whole);
      cancel.ThrowIfCancelled("compare");
      const EmbeddingResult result_b =
          extractor.EmbedBytes(UploadBytes(*b), b->filename, whole);
      const double similarity =
          CosineSimilarity(result_a.embedding, result_b.embedding);
      ApiResponse response;
      response.body = apps::ComparisonToJson(similarity, threshold);
      response.body["a"] = result_a.source;
      response.body["b"] = result_b.source;
      response.body["duration_a_s"] = result_a.duration_s;
      response.body["duration_b_s"] = result_b.duration_s;
      response.body["warnings_a"] = apps::WarningsToJson(result_a.warnings);
      response.body["warnings_b"] = apps::WarningsToJson(result_b.warnings);
      response.body["device"] = extractor.Device().name;
      response.body["processing_s"] = SecondsSince(start);
      return response;
    });
  });
}

ApiResponse Routes::Model() const {
  return Guarded([&] {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!extractor_) {
      ApiResponse response =
          ErrorResponse(503, "loading", "the model is still loading");
      response.headers.emplace_back("Retry-After", "1");
      return response;
    }
    ApiResponse response;
    response.body = model_json_;
    return response;
  });
}

ApiResponse Routes::Health() const {
  return Guarded([&] {
    ApiResponse response;
    if (Ready()) {
      response.body = {{"status", "ok"}};
    } else {
      response.status = 503;
      response.body = {{"status", "loading"}};
      response.headers.emplace_back("Retry-After", "1");
    }
    // What a client should know before it uploads (open, like /healthz).
    response.body["auth_required"] = limits_.auth_required;
    response.body["max_upload_bytes"] = limits_.max_upload_bytes;
    response.body["max_audio_seconds"] = limits_.max_audio_seconds;
    return response;
  });
}

ApiResponse Routes::OpenApi() const {
  return Guarded([&] {
    ApiResponse response;
    response.body = OpenApiDocument();
    return response;
  });
}

}  // namespace voxprint::server
