// The server's parts that need no socket: the work pool, the routes (plain
// structs in, status + JSON out), the OpenAPI document and the embedded page.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "openapi.h"
#include "routes.h"
#include "static-assets.h"
#include "support/reference-kit.h"
#include "work-pool.h"

namespace voxprint::server {
namespace {

using namespace std::chrono_literals;

TEST(WorkPool, AcceptsWorkersPlusQueueThenRefuses) {
  WorkPool pool(/*workers=*/2, /*queue_capacity=*/1);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  auto job = [&] {
    ++started;
    released.wait();
    ++finished;
  };
  EXPECT_TRUE(pool.TrySubmit(job));
  EXPECT_TRUE(pool.TrySubmit(job));
  EXPECT_TRUE(pool.TrySubmit(job));   // waits in the queue
  EXPECT_FALSE(pool.TrySubmit(job));  // workers busy, queue full
  EXPECT_EQ(pool.InFlight(), 3);
  for (int i = 0; i < 200 && started < 2; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(started.load(), 2);
  release.set_value();
  for (int i = 0; i < 200 && finished < 3; ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(finished.load(), 3);
  EXPECT_TRUE(pool.TrySubmit([] {}));
}

TEST(WorkPool, ZeroQueueStillUsesIdleWorkers) {
  WorkPool pool(1, 0);
  std::promise<void> done;
  EXPECT_TRUE(pool.TrySubmit([&] { done.set_value(); }));
  EXPECT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
}

TEST(WorkPool, AThrowingJobDoesNotKillItsWorker) {
  WorkPool pool(1, 4);
  EXPECT_TRUE(pool.TrySubmit([] { throw std::runtime_error("boom"); }));
  std::promise<void> done;
  EXPECT_TRUE(pool.TrySubmit([&] { done.set_value(); }));
  EXPECT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
}

TEST(WorkPool, DestructorRunsAcceptedJobs) {
  std::atomic<int> ran{0};
  {
    WorkPool pool(1, 8);
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(pool.TrySubmit([&] { ++ran; }));
  }
  EXPECT_EQ(ran.load(), 5);
}

TEST(WorkPool, AReservedSlotCountsUntilItsLastCopyGoes) {
  WorkPool pool(1, 1);
  std::shared_ptr<WorkPool::Slot> first = pool.TryReserve();
  std::shared_ptr<WorkPool::Slot> second = pool.TryReserve();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(pool.TryReserve(), nullptr);
  EXPECT_EQ(pool.InFlight(), 2);
  first.reset();
  EXPECT_EQ(pool.InFlight(), 1);
  second->Release();
  second->Release();  // idempotent
  EXPECT_EQ(pool.InFlight(), 0);
  second.reset();
  EXPECT_EQ(pool.InFlight(), 0);
}

// A client that sends its next request on seeing a reply must find the
// place free: the job releases it before publishing its result.
TEST(WorkPool, TheSlotIsFreeOnceTheResultIsPublished) {
  WorkPool pool(1, 0);
  for (int round = 0; round < 300; ++round) {
    std::shared_ptr<WorkPool::Slot> slot = pool.TryReserve();
    ASSERT_NE(slot, nullptr) << "round " << round;
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> published = done->get_future();
    pool.Submit(slot, [slot, done] {
      slot->Release();
      done->set_value();
    });
    slot.reset();
    published.wait();
  }
}

TEST(HttpStatus, FollowsTheErrorCode) {
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInvalidArgument), 422);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUnsupportedInput), 400);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kCorruptInput), 400);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kResourceLimit), 413);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kBackendUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInternal), 500);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kIoError), 500);
}

Upload FileUpload(const std::string& field, const std::string& name,
                  std::string bytes = "RIFF") {
  return {field, name, "audio/wav", std::move(bytes)};
}

ApiRequest EmbedRequestWith(std::map<std::string, std::string> params) {
  ApiRequest request;
  request.params = std::move(params);
  request.uploads.push_back(FileUpload("file", "a.wav"));
  return request;
}

TEST(Routes, ParametersAreCheckedBeforeTheModelIsNeeded) {
  Routes routes(RouteLimits{});
  const std::map<std::string, std::string> bad[] = {
      {{"window", "bogus"}},
      {{"window", "sliding"}, {"duration", "abc"}},
      {{"window", "sliding"}, {"duration", "3 "}},
      {{"window", "sliding"}, {"step", "0"}},
      {{"window", "sliding"}, {"duration", "-2"}},
      {{"start", "4"}, {"end", "3"}},
      {{"start", "-0.5"}},
      {{"end", "inf"}},
      {{"start", ""}},
  };
  for (const auto& params : bad) {
    const ApiResponse response = routes.Embed(EmbedRequestWith(params));
    EXPECT_EQ(response.status, 422) << response.body.dump();
    EXPECT_EQ(response.body["error"], "invalid_argument");
    EXPECT_FALSE(response.body["detail"].get<std::string>().empty());
  }
}

TEST(Routes, MissingOrUnexpectedFiles) {
  Routes routes(RouteLimits{});
  ApiRequest none;
  EXPECT_EQ(routes.Embed(none).status, 400);
  EXPECT_EQ(routes.Embed(none).body["error"], "missing_file");

  ApiRequest wrong;
  wrong.uploads.push_back(FileUpload("audio", "a.wav"));
  EXPECT_EQ(routes.Embed(wrong).status, 422);

  ApiRequest only_a;
  only_a.uploads.push_back(FileUpload("a", "a.wav"));
  EXPECT_EQ(routes.Compare(only_a).status, 400);

  ApiRequest two_a;
  two_a.uploads.push_back(FileUpload("a", "a.wav"));
  two_a.uploads.push_back(FileUpload("a", "b.wav"));
  two_a.uploads.push_back(FileUpload("b", "c.wav"));
  EXPECT_EQ(routes.Compare(two_a).status, 400);

  for (const char* threshold : {"1.01", "-1.01", "x", "nan"}) {
    ApiRequest request;
    request.params["threshold"] = threshold;
    request.uploads.push_back(FileUpload("a", "a.wav"));
    request.uploads.push_back(FileUpload("b", "b.wav"));
    EXPECT_EQ(routes.Compare(request).status, 422) << threshold;
  }
}

TEST(Routes, AnswerLoadingUntilAModelIsSet) {
  Routes routes(RouteLimits{});
  EXPECT_FALSE(routes.Ready());
  const ApiResponse health = routes.Health();
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(health.body["status"], "loading");
  const ApiResponse embed = routes.Embed(EmbedRequestWith({}));
  EXPECT_EQ(embed.status, 503);
  EXPECT_EQ(embed.body["error"], "loading");
  ASSERT_EQ(embed.headers.size(), 1u);
  EXPECT_EQ(embed.headers[0].first, "Retry-After");
  EXPECT_EQ(routes.Model().status, 503);
}

// The kit's model on one CPU session (the tests below need no more).
ExtractorOptions KitModelOptions() {
  ExtractorOptions options;
  options.model_path =
      (testing::ReferenceDir() / "models/pytorch_model.bin").string();
  options.device = "cpu";
  options.max_parallel_runs = 1;
  return options;
}

TEST(Routes, EmbedCompareAndModelWithTheReferenceModel) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const auto kit = testing::ReferenceDir();
  const ExtractorOptions options = KitModelOptions();
  RouteLimits limits;
  limits.workers = 1;
  Routes routes(limits);
  routes.SetExtractor(std::make_shared<const Extractor>(options));
  EXPECT_TRUE(routes.Ready());
  EXPECT_EQ(routes.Health().status, 200);

  const auto bytes = testing::ReadFileBytes(kit / "audio/short_1s.wav");
  const std::string wav(bytes.begin(), bytes.end());
  ApiRequest request;
  request.uploads.push_back(FileUpload("body", "short.wav", wav));
  const ApiResponse embed = routes.Embed(std::move(request));
  ASSERT_EQ(embed.status, 200) << embed.body.dump();
  const auto& result = embed.body["results"][0];
  EXPECT_EQ(result["path"], "short.wav");
  const std::vector<float> embedding =
      result["embedding"].get<std::vector<float>>();
  const auto expected =
      testing::LoadNpy(kit / "expected/short_1s_wav.whole.npy");
  EXPECT_TRUE(testing::CloseInRelativeL2(embedding, expected.values, 1e-4));

  ApiRequest garbage;
  garbage.uploads.push_back(
      FileUpload("file", "noise.mp3", std::string(5000, '\x55')));
  const ApiResponse refused = routes.Embed(std::move(garbage));
  EXPECT_EQ(refused.status, 400) << refused.body.dump();

  ApiRequest pair;
  pair.uploads.push_back(FileUpload("a", "x.wav", wav));
  pair.uploads.push_back(FileUpload("b", "y.wav", wav));
  const ApiResponse same = routes.Compare(std::move(pair));
  ASSERT_EQ(same.status, 200) << same.body.dump();
  EXPECT_NEAR(same.body["similarity"].get<double>(), 1.0, 1e-6);
  EXPECT_EQ(same.body["same_speaker"], true);

  const ApiResponse model = routes.Model();
  ASSERT_EQ(model.status, 200);
  EXPECT_EQ(model.body["license"], "CC-BY-4.0");
  EXPECT_EQ(model.body["file"]["path"], "pytorch_model.bin");
  EXPECT_EQ(model.body["citations"].size(), 2u);
}

// Long enough on any CPU that the waits below end first: sliding windows
// over the 30 s reference file.
ApiRequest SlowRequest(const std::string& wav) {
  ApiRequest request;
  request.params = {{"window", "sliding"}, {"duration", "3"}, {"step", "0.25"}};
  request.uploads.push_back(FileUpload("body", "sample.wav", wav));
  return request;
}

TEST(Routes, AdmissionTimeoutClientGoneAndShutdown) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const auto kit = testing::ReferenceDir();
  const ExtractorOptions options = KitModelOptions();
  RouteLimits limits;
  limits.workers = 1;
  limits.queue = 0;
  limits.request_timeout_s = 0.3;
  Routes routes(limits);
  routes.SetExtractor(std::make_shared<const Extractor>(options));
  const auto bytes = testing::ReadFileBytes(kit / "audio/sample.wav");
  const std::string wav(bytes.begin(), bytes.end());

  // The one place, taken from the headers; a second request is refused.
  ApiResponse refusal;
  std::shared_ptr<WorkPool::Slot> slot = routes.Admit(&refusal);
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(routes.Admit(&refusal), nullptr);
  EXPECT_EQ(refusal.status, 503);
  EXPECT_EQ(refusal.body["error"], "busy");
  ASSERT_EQ(refusal.headers.size(), 1u);
  EXPECT_EQ(refusal.headers[0].first, "Retry-After");

  // Timeout: 504 at the deadline, not when the job ends.
  ApiRequest timed = SlowRequest(wav);
  timed.slot = std::move(slot);
  auto start = std::chrono::steady_clock::now();
  const ApiResponse late = routes.Embed(std::move(timed));
  EXPECT_EQ(late.status, 504) << late.body.dump();
  EXPECT_EQ(late.body["error"], "timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);

  // The place stays taken until the cancelled job has ended.
  for (int i = 0; i < 1200 && !routes.Admit(&refusal); ++i)
    std::this_thread::sleep_for(50ms);
  slot = routes.Admit(&refusal);
  ASSERT_NE(slot, nullptr) << "the worker never came back";

  // Client gone: noticed while waiting, not after the job.
  limits.request_timeout_s = 600;
  limits.queue = 2;  // the abandoned job may still be running below
  Routes patient(limits);
  patient.SetExtractor(std::make_shared<const Extractor>(options));
  ApiRequest abandoned = SlowRequest(wav);
  const auto gone_at = std::chrono::steady_clock::now() + 200ms;
  abandoned.client_gone = [gone_at] {
    return std::chrono::steady_clock::now() >= gone_at;
  };
  start = std::chrono::steady_clock::now();
  const ApiResponse gone = patient.Embed(std::move(abandoned));
  EXPECT_EQ(gone.status, 499) << gone.body.dump();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);

  // Shutdown: everything waiting or arriving is answered 503 at once.
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    patient.CancelAll();
  });
  start = std::chrono::steady_clock::now();
  const ApiResponse stopped = patient.Embed(SlowRequest(wav));
  stopper.join();
  EXPECT_EQ(stopped.status, 503) << stopped.body.dump();
  EXPECT_EQ(stopped.body["error"], "shutting_down");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(patient.Admit(&refusal), nullptr);
  EXPECT_EQ(refusal.body["error"], "shutting_down");
}

TEST(OpenApi, DescribesEveryRoute) {
  const nlohmann::json& document = OpenApiDocument();
  EXPECT_EQ(document["openapi"].get<std::string>().substr(0, 2), "3.");
  for (const char* path : {"/api/embed", "/api/compare", "/api/model",
                           "/api/openapi.json", "/healthz"})
    EXPECT_TRUE(document["paths"].contains(path)) << path;
}

TEST(StaticAssets, ThePageAndEverythingItLoadsAreEmbedded) {
  const StaticAsset* index = FindStaticAsset("/");
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index, FindStaticAsset("/index.html"));
  EXPECT_EQ(index->content_type, "text/html; charset=utf-8");
  const std::string html(reinterpret_cast<const char*>(index->data),
                         index->size);
  EXPECT_NE(html.find("Extract embedding"), std::string::npos);
  // Every /assets/ reference of the page resolves to an embedded file.
  int references = 0;
  for (size_t at = html.find("\"/assets/"); at != std::string::npos;
       at = html.find("\"/assets/", at + 1)) {
    const size_t end = html.find('"', at + 1);
    const std::string path = html.substr(at + 1, end - at - 1);
    EXPECT_NE(FindStaticAsset(path), nullptr) << path;
    ++references;
  }
  EXPECT_GE(references, 2);
  EXPECT_EQ(FindStaticAsset("/nope.js"), nullptr);
}

}  // namespace
}  // namespace voxprint::server
