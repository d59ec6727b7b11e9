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

TEST(Routes, EmbedCompareAndModelWithTheReferenceModel) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const auto kit = testing::ReferenceDir();
  ExtractorOptions options;
  options.model_path = (kit / "models/pytorch_model.bin").string();
  options.device = "cpu";
  options.max_parallel_runs = 1;
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
  EXPECT_EQ(model.body["citations"].size(), 3u);
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
