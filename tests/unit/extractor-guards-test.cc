// The Extractor against requests that must not run: parameters out of
// range fail before any work (kInvalidArgument naming the field and its
// bound), a job cancelled from another thread stops promptly with
// kCancelled on every path (sliding windows, many files, one long input in
// memory or streamed), and a model that produces NaN/Inf fails clearly
// instead of returning nulls.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/error-of.h"
#include "support/reference-kit.h"
#include "support/wav-builder.h"
#include "voxprint/error.h"
#include "voxprint/extractor.h"

namespace voxprint {
namespace {

using testing::ErrorOf;

using testing::ReferenceDir;
using Clock = std::chrono::steady_clock;

std::string Message(const std::function<void()>& call) {
  const Error error = ErrorOf(call);
  EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument) << error.what();
  return error.what();
}

TEST(EmbedRequestValidate, EveryNumberHasARange) {
  const auto validate = [](const std::function<void(EmbedRequest&)>& set) {
    return Message([&] {
      EmbedRequest request;
      request.mode = WindowMode::kSliding;
      set(request);
      request.Validate();
    });
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_NE(validate([](auto& r) { r.window_duration_s = 1e9; })
                .find("window duration 1e+09 s is out of range: it must be > 0 "
                      "and at most 3600 s"),
            std::string::npos);
  EXPECT_NE(validate([&](auto& r) {
              r.window_duration_s = nan;
            }).find("window duration"),
            std::string::npos);
  EXPECT_NE(validate([](auto& r) { r.window_step_s = 0.0001; })
                .find("window step 0.0001 s is out of range: it must be at "
                      "least 0.01 s"),
            std::string::npos);
  EXPECT_NE(
      validate([&](auto& r) { r.window_step_s = inf; }).find("window step"),
      std::string::npos);
  EXPECT_NE(validate([](auto& r) { r.start_s = 1e20; })
                .find("start 1e+20 s is out of range: it must be >= 0 and "
                      "below 1e+06 s"),
            std::string::npos);
  EXPECT_NE(validate([](auto& r) { r.start_s = 1e300; }).find("start"),
            std::string::npos);
  EXPECT_NE(validate([](auto& r) { r.start_s = -1; }).find("start"),
            std::string::npos);
  EXPECT_NE(validate([&](auto& r) { r.end_s = nan; }).find("end"),
            std::string::npos);
  EXPECT_NE(validate([](auto& r) { r.end_s = 2e6; }).find("end"),
            std::string::npos);
  // Whole mode checks duration and step too: a typo should not pass.
  EXPECT_NE(Message([] {
              EmbedRequest request;
              request.window_duration_s = -3;
              request.Validate();
            }).find("window duration"),
            std::string::npos);
  EmbedRequest fine;
  fine.mode = WindowMode::kSliding;
  fine.window_duration_s = kMaxWindowSeconds;
  fine.window_step_s = kMinWindowStepSeconds;
  fine.start_s = 0;
  fine.end_s = kMaxTimeSeconds;
  EXPECT_NO_THROW(fine.Validate());
}

TEST(ExtractorOptionsValidate, ThreadsOutOfRangeFailBeforeTheModelIsRead) {
  for (const int threads : {-1, kMaxThreads + 1, 20000, 100000}) {
    ExtractorOptions options;
    options.model_path = "/nonexistent/model.bin";
    options.backend.num_threads = threads;
    const std::string message =
        Message([&] { const Extractor extractor(options); });
    EXPECT_NE(
        message.find("threads " + std::to_string(threads) + " is out of range"),
        std::string::npos)
        << message;
  }
}

class ExtractorGuards : public ::testing::Test {
 protected:
  static std::string Audio(const std::string& name) {
    return (ReferenceDir() / "audio" / name).string();
  }
  static ExtractorOptions Options() {
    ExtractorOptions options;
    options.model_path =
        (ReferenceDir() / "models" / "pytorch_model.bin").string();
    options.device = "cpu";
    options.model_checksum = false;
    return options;
  }
  void SetUp() override { VOXPRINT_REQUIRE_REFERENCE_KIT(); }

  // Runs `job` with `request.cancel` live, cancels it from another thread
  // after `delay`, and expects kCancelled within 2 s of the cancel (the job
  // would take much longer).
  static void ExpectCancelledPromptly(
      EmbedRequest& request, const std::function<void()>& job,
      std::chrono::milliseconds delay = std::chrono::milliseconds(500)) {
    request.cancel = CancelToken::Create();
    Clock::time_point cancelled_at;
    std::thread canceller([&] {
      std::this_thread::sleep_for(delay);
      cancelled_at = Clock::now();
      request.cancel.Cancel();
    });
    const Error error = ErrorOf(job);
    const Clock::time_point stopped_at = Clock::now();
    canceller.join();
    EXPECT_EQ(error.code(), ErrorCode::kCancelled) << error.what();
    EXPECT_NE(std::string(error.what()).find("cancelled"), std::string::npos);
    EXPECT_GT(stopped_at, cancelled_at) << "finished before the cancel: the "
                                           "job is too short to test";
    EXPECT_LT(std::chrono::duration<double>(stopped_at - cancelled_at).count(),
              2.0);
  }
};

TEST_F(ExtractorGuards, TheWindowWorkBoundNamesTheStep) {
  const Extractor extractor(Options());
  EmbedRequest request;
  request.mode = WindowMode::kSliding;
  request.window_step_s = 0.02;  // 3 s windows: 135x the 30 s of audio
  const Error error =
      ErrorOf([&] { extractor.EmbedFile(Audio("sample.wav"), request); });
  EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(error.what()).find("window step 0.02 s asks for"),
            std::string::npos)
      << error.what();
  // An excerpt past any input: refused, no out-of-range conversion.
  request = {};
  request.start_s = 9e5;
  EXPECT_EQ(ErrorOf([&] {
              extractor.EmbedFile(Audio("sample.wav"), request);
            }).code(),
            ErrorCode::kInvalidArgument);
}

// Freeing the idle sessions (the diarizer does before clustering) costs
// the next call a new session, never its numbers.
TEST_F(ExtractorGuards, ReleasingIdleMemoryKeepsTheNumbers) {
  const Extractor extractor(Options());
  const std::vector<float> before =
      extractor.EmbedFile(Audio("sample.wav")).embedding;
  extractor.ReleaseIdleMemory();
  const std::vector<float> after =
      extractor.EmbedFile(Audio("sample.wav")).embedding;
  ASSERT_EQ(before.size(), 256u);
  EXPECT_EQ(before, after);
}

TEST_F(ExtractorGuards, SlidingWindowsStopWhenCancelled) {
  const Extractor extractor(Options());
  EmbedRequest request;
  request.mode = WindowMode::kSliding;
  request.window_step_s = 0.05;  // 541 windows of 3 s: many seconds of work
  ExpectCancelledPromptly(
      request, [&] { extractor.EmbedFile(Audio("sample.wav"), request); });
}

TEST_F(ExtractorGuards, ManyFilesStopWhenCancelled) {
  const Extractor extractor(Options());
  const std::vector<std::string> paths(200, Audio("sample.wav"));
  EmbedRequest request;
  size_t outcomes = 0;
  ExpectCancelledPromptly(request, [&] {
    extractor.EmbedFiles(paths, request,
                         [&](size_t, BatchOutcome&&) { ++outcomes; });
  });
  EXPECT_LT(outcomes, paths.size());
}

// 10 minutes of noise at 16 kHz as a float WAV.
std::vector<uint8_t> LongWav() {
  std::mt19937 random(1);
  std::normal_distribution<float> noise(0.0f, 0.1f);
  std::vector<float> samples(16000 * 600);
  for (float& x : samples) x = noise(random);
  std::vector<uint8_t> bytes =
      testing::WavHeader(3, 1, 16000, 32, samples.size() * sizeof(float));
  const auto* data = reinterpret_cast<const uint8_t*>(samples.data());
  bytes.insert(bytes.end(), data, data + samples.size() * sizeof(float));
  return bytes;
}

TEST_F(ExtractorGuards, ALongInputStopsWhenCancelledInMemoryAndStreamed) {
  const std::vector<uint8_t> wav = LongWav();
  ExtractorOptions options = Options();
  options.streaming_threshold_s = 0;  // in memory: the network's time tiles
  const Extractor in_memory(options);
  EmbedRequest request;
  ExpectCancelledPromptly(
      request, [&] { in_memory.EmbedBytes(wav, "long.wav", request); },
      std::chrono::milliseconds(1500));

  options.streaming_threshold_s = 60;  // two decoding passes, tile by tile
  const Extractor streaming(options);
  for (const int delay_ms : {200, 1500}) {
    SCOPED_TRACE(delay_ms);
    ExpectCancelledPromptly(
        request, [&] { streaming.EmbedBytes(wav, "long.wav", request); },
        std::chrono::milliseconds(delay_ms));
  }
}

// The kit's hostile model: finite weights whose stride-0 tensors make the
// network overflow. Either the loader refuses it (a model error), or every
// path that embeds with it fails as non-finite: never a null embedding.
TEST_F(ExtractorGuards, AModelProducingNaNNeverGivesAnEmbedding) {
  const auto hostile = ReferenceDir() / "hostile" / "bomb_stride0_base256.pt";
  if (!std::filesystem::exists(hostile))
    GTEST_SKIP() << hostile << " is absent";
  ExtractorOptions options = Options();
  options.model_path = hostile.string();
  std::unique_ptr<Extractor> extractor;
  try {
    extractor = std::make_unique<Extractor>(options);
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kModelError) << error.what();
    GTEST_SKIP() << "the loader refuses it: " << error.what();
  }
  const std::string path = Audio("short_1s.wav");
  const auto expect_non_finite = [&](const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kInternal) << error.what();
    EXPECT_EQ(std::string(error.what()).rfind(path + ": ", 0), 0u)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("non-finite values (NaN/Inf)"),
              std::string::npos)
        << error.what();
  };
  expect_non_finite(ErrorOf([&] { extractor->EmbedFile(path); }));
  EmbedRequest sliding;
  sliding.mode = WindowMode::kSliding;
  sliding.window_duration_s = 0.5;
  sliding.window_step_s = 0.25;
  expect_non_finite(ErrorOf([&] { extractor->EmbedFile(path, sliding); }));
  const std::vector<std::string> paths = {path, path};
  size_t outcomes = 0;
  extractor->EmbedFiles(paths, {}, [&](size_t, BatchOutcome&& outcome) {
    ++outcomes;
    EXPECT_FALSE(outcome.result);
    ASSERT_TRUE(outcome.error);
    expect_non_finite(*outcome.error);
  });
  EXPECT_EQ(outcomes, paths.size());
  const std::vector<float> features(100 * 80, 0.25f);
  EXPECT_EQ(ErrorOf([&] { extractor->EmbedFeatures(features, 1, 100); }).code(),
            ErrorCode::kInternal);
}

}  // namespace
}  // namespace voxprint
