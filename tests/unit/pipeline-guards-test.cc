// pipeline::SampleEmbedder's guards: the work a sliding-window request may
// ask for is bounded before any of it runs, a cancelled request stops
// between batches, and an embedding holding NaN or Inf never passes for a
// result (a real CPU network whose weights overflow float32, and a session
// that counts its runs standing in for the network where time matters).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pipeline/sample-embedder.h"
#include "pipeline/session-pool.h"
#include "support/error-of.h"
#include "support/random-resnet.h"
#include "voxprint/backend.h"
#include "voxprint/error.h"
#include "voxprint/extractor.h"
#include "voxprint/features.h"

namespace voxprint {
namespace {

using testing::ErrorOf;

constexpr int kDim = 4;

// Returns `value` for every embedding after sleeping `run_time` per run.
struct FakeNetwork {
  std::atomic<int> runs{0};
  std::chrono::milliseconds run_time{0};
  float value = 0.5f;
};

class FakeSession final : public Session {
 public:
  explicit FakeSession(FakeNetwork* network) : network_(network) {}
  std::vector<float> Run(std::span<const float>, int batch, int64_t) override {
    std::this_thread::sleep_for(network_->run_time);
    ++network_->runs;
    return std::vector<float>(static_cast<size_t>(batch) * kDim,
                              network_->value);
  }

 private:
  FakeNetwork* network_;
};

class FakeModel final : public PreparedModel {
 public:
  explicit FakeModel(FakeNetwork* network) : network_(network) {}
  std::unique_ptr<Session> NewSession() const override {
    return std::make_unique<FakeSession>(network_);
  }
  int EmbeddingDim() const override { return kDim; }

 private:
  FakeNetwork* network_;
};

struct Harness {
  FakeNetwork network;
  pipeline::SessionPool sessions{std::make_shared<FakeModel>(&network), 1};
};

// Audio-like noise: the support library's unit normal values at 0.1.
std::vector<float> Noise(size_t count, uint32_t seed) {
  std::vector<float> samples = testing::RandomFeatures(count, seed);
  for (float& x : samples) x *= 0.1f;
  return samples;
}

EmbedRequest Sliding(double duration_s, double step_s) {
  EmbedRequest request;
  request.mode = WindowMode::kSliding;
  request.window_duration_s = duration_s;
  request.window_step_s = step_s;
  return request;
}

TEST(WindowWork, TooFineAStepIsRefusedBeforeAnyWork) {
  Harness harness;
  const pipeline::SampleEmbedder embedder(FbankOptions{}, harness.sessions,
                                          kDim, 6000);
  const auto samples = Noise(16000 * 30, 1);
  // 3 s windows every 0.02 s over 30 s: 1351 windows, 135x the audio.
  const Error error = ErrorOf([&] {
    embedder.EmbedSliding(samples, Sliding(3.0, 0.02), 0.0, "a.wav");
  });
  EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
  const std::string message = error.what();
  EXPECT_EQ(message.rfind("a.wav: window step 0.02 s asks for 1351 windows", 0),
            0u)
      << message;
  EXPECT_NE(message.find("at most 100x"), std::string::npos) << message;
  EXPECT_NE(message.find("at least 0.03 s"), std::string::npos) << message;
  EXPECT_EQ(harness.network.runs, 0);
  // duration / 100 is the finest step allowed.
  EXPECT_NO_THROW(
      embedder.CheckWindowWork(16000 * 30, Sliding(3.0, 0.03), "a"));
}

TEST(WindowWork, TheWindowCountIsBounded) {
  Harness harness;
  const pipeline::SampleEmbedder embedder(FbankOptions{}, harness.sessions,
                                          kDim, 6000, nullptr,
                                          pipeline::WindowLimits{100.0, 50});
  // 60 windows of 1 s every 1 s: coverage 1x but over the 50-window bound.
  const Error error = ErrorOf([&] {
    embedder.CheckWindowWork(16000 * 60, Sliding(1.0, 1.0), "long.wav");
  });
  EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(error.what()).find("at most 50 windows"),
            std::string::npos)
      << error.what();
  EXPECT_NO_THROW(
      embedder.CheckWindowWork(16000 * 50, Sliding(1.0, 1.0), "long.wav"));
}

TEST(WindowWork, OnePaddedWindowLongerThanTheAudioIsAllowed) {
  Harness harness;
  const pipeline::SampleEmbedder embedder(FbankOptions{}, harness.sessions,
                                          kDim, 6000);
  // A 600 s window over 1 s of audio: one (padded) window, nothing to bound.
  EXPECT_NO_THROW(
      embedder.CheckWindowWork(16000, Sliding(600.0, 1.0), "short.wav"));
}

TEST(Cancellation, SlidingWindowsStopBetweenBatches) {
  Harness harness;
  harness.network.run_time = std::chrono::milliseconds(50);
  // Batches of one 1 s window: 541 windows would take 27 s.
  const pipeline::SampleEmbedder embedder(FbankOptions{}, harness.sessions,
                                          kDim, 100);
  const auto samples = Noise(16000 * 55, 2);
  EmbedRequest request = Sliding(1.0, 0.1);
  request.cancel = CancelToken::Create();
  std::chrono::steady_clock::time_point cancelled_at;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancelled_at = std::chrono::steady_clock::now();
    request.cancel.Cancel();
  });
  const Error error = ErrorOf(
      [&] { embedder.EmbedSliding(samples, request, 0.0, "talk.wav"); });
  const auto stopped_at = std::chrono::steady_clock::now();
  canceller.join();
  EXPECT_EQ(error.code(), ErrorCode::kCancelled);
  EXPECT_EQ(std::string(error.what()).rfind("talk.wav: ", 0), 0u)
      << error.what();
  EXPECT_LT(std::chrono::duration<double>(stopped_at - cancelled_at).count(),
            2.0);
  EXPECT_LT(harness.network.runs, 100);
}

TEST(Cancellation, ACancelledTokenStopsWholeInputsBeforeTheNetwork) {
  Harness harness;
  const pipeline::SampleEmbedder embedder(FbankOptions{}, harness.sessions,
                                          kDim, 6000);
  const CancelToken cancel = CancelToken::Create();
  cancel.Cancel();
  const auto samples = Noise(16000 * 3, 3);
  EXPECT_EQ(
      ErrorOf([&] { embedder.EmbedWhole(samples, "x.wav", cancel); }).code(),
      ErrorCode::kCancelled);
  EXPECT_EQ(harness.network.runs, 0);
}

TEST(Finiteness, NonFiniteEmbeddingsAreRefusedOnEveryPath) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity()}) {
    Harness harness;
    harness.network.value = bad;
    const pipeline::SampleEmbedder embedder(FbankOptions{}, harness.sessions,
                                            kDim, 6000);
    const auto samples = Noise(16000 * 5, 4);
    const Error whole = ErrorOf([&] { embedder.EmbedWhole(samples, "w.wav"); });
    EXPECT_EQ(whole.code(), ErrorCode::kInternal);
    EXPECT_EQ(std::string(whole.what())
                  .rfind("w.wav: the model produced "
                         "non-finite values (NaN/Inf)",
                         0),
              0u)
        << whole.what();
    const Error sliding = ErrorOf([&] {
      embedder.EmbedSliding(samples, Sliding(3.0, 1.0), 0.0, "s.wav");
    });
    EXPECT_EQ(sliding.code(), ErrorCode::kInternal);
    EXPECT_EQ(std::string(sliding.what()).rfind("s.wav: window at 0 s: ", 0),
              0u)
        << sliding.what();
    const Features features = embedder.FeaturesOf(samples, "f");
    EXPECT_EQ(ErrorOf([&] {
                embedder.Run(features.values, 1, features.num_frames);
              }).code(),
              ErrorCode::kInternal);
  }
}

// Finite weights that overflow float32 in a real network (the CPU backend):
// the embedding holds NaN/Inf, and the pipeline says so instead of passing
// it on.
TEST(Finiteness, AnOverflowingRealNetworkIsRefused) {
  ResNetArchitecture arch;
  arch.name = "overflowing";
  arch.blocks_per_stage = {1, 1, 1, 1};
  arch.base_channels = 4;
  arch.embedding_dim = 8;
  model::ResNetWeights weights = testing::RandomWeights(arch, 7);
  const auto scale = [](model::FoldedConv& conv) {
    for (float& w : conv.weight) w *= 1e6f;
  };
  scale(weights.stem);
  for (auto& stage : weights.stages)
    for (auto& block : stage) {
      for (auto& conv : block.convs) scale(conv);
      if (block.shortcut) scale(*block.shortcut);
    }
  BackendOptions options;
  options.num_threads = 1;
  pipeline::SessionPool sessions(
      CreateBackend("cpu", options)->Prepare(weights), 1);
  const pipeline::SampleEmbedder embedder(FbankOptions{}, sessions,
                                          arch.embedding_dim, 6000);
  const auto samples = Noise(16000 * 2, 5);
  const Error error = ErrorOf([&] { embedder.EmbedWhole(samples, "x.wav"); });
  EXPECT_EQ(error.code(), ErrorCode::kInternal);
  EXPECT_NE(std::string(error.what()).find("non-finite values (NaN/Inf)"),
            std::string::npos)
      << error.what();
}

}  // namespace
}  // namespace voxprint
