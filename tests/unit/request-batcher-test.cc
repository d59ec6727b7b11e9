// pipeline::RequestBatcher: concurrent callers share network runs, each gets
// its own row, a failing run fails only its own callers, and a caller alone
// runs at once. A session that records its RunMixed calls stands in for the
// network (its "embedding" of an input is [frames, first value]).
#include "pipeline/request-batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pipeline/session-pool.h"
#include "voxprint/backend.h"
#include "voxprint/error.h"

namespace voxprint {
namespace {

constexpr int kDim = 2;
constexpr int kBins = 3;

struct Network {
  std::mutex mutex;
  std::vector<size_t> batch_sizes;
  std::atomic<int> fail_next{0};  // runs to fail from now on
  std::chrono::milliseconds run_time{20};
};

class SlowSession final : public Session {
 public:
  explicit SlowSession(Network* network) : network_(network) {}
  std::vector<float> Run(std::span<const float>, int, int64_t) override {
    ADD_FAILURE() << "the batcher runs RunMixed only";
    return {};
  }
  std::vector<float> RunMixed(std::span<const Input> inputs) override {
    {
      std::lock_guard lock(network_->mutex);
      network_->batch_sizes.push_back(inputs.size());
    }
    std::this_thread::sleep_for(network_->run_time);
    if (network_->fail_next > 0) {
      --network_->fail_next;
      throw Error(ErrorCode::kResourceLimit, "device out of memory");
    }
    std::vector<float> out;
    for (const Input& input : inputs) {
      out.push_back(static_cast<float>(input.frames));
      out.push_back(input.features[0]);
    }
    return out;
  }

 private:
  Network* network_;
};

class SlowModel final : public PreparedModel {
 public:
  explicit SlowModel(Network* network) : network_(network) {}
  std::unique_ptr<Session> NewSession() const override {
    return std::make_unique<SlowSession>(network_);
  }
  int EmbeddingDim() const override { return kDim; }

 private:
  Network* network_;
};

struct Harness {
  Network network;
  pipeline::SessionPool sessions{std::make_shared<SlowModel>(&network), 2};
};

std::vector<float> Input(int64_t frames, float first) {
  std::vector<float> features(frames * kBins, 0.5f);
  features[0] = first;
  return features;
}

TEST(RequestBatcher, ConcurrentCallersShareRunsAndGetTheirOwnRows) {
  Harness harness;
  harness.network.run_time = std::chrono::milliseconds(50);
  pipeline::RequestBatcher batcher(harness.sessions, kDim, 100000);
  constexpr int kCallers = 12;
  std::vector<std::vector<float>> results(kCallers);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i)
    callers.emplace_back([&, i] {
      const auto features = Input(10 + i, static_cast<float>(i));
      results[i] = batcher.Run(features, 10 + i);
    });
  for (auto& caller : callers) caller.join();
  for (int i = 0; i < kCallers; ++i)
    EXPECT_EQ(results[i], (std::vector<float>{static_cast<float>(10 + i),
                                              static_cast<float>(i)}))
        << "caller " << i;
  const auto totals = batcher.Totals();
  EXPECT_EQ(totals.inputs, kCallers);
  // 12 callers against 50 ms runs: those that arrive during a run share
  // the next.
  EXPECT_LT(totals.batches, kCallers);
  EXPECT_GT(totals.largest, 1);
}

TEST(RequestBatcher, ACallerAloneRunsAtOnceInABatchOfOne) {
  Harness harness;
  harness.network.run_time = std::chrono::milliseconds(0);
  pipeline::RequestBatcher batcher(harness.sessions, kDim, 100000);
  for (int i = 0; i < 3; ++i) {
    const auto features = Input(20, 7.0f);
    EXPECT_EQ(batcher.Run(features, 20), (std::vector<float>{20.0f, 7.0f}));
  }
  EXPECT_EQ(harness.network.batch_sizes, (std::vector<size_t>{1, 1, 1}));
}

TEST(RequestBatcher, ABatchTakesQueuedInputsUpToItsFrameBudget) {
  Harness harness;
  harness.network.run_time = std::chrono::milliseconds(50);
  pipeline::RequestBatcher batcher(harness.sessions, kDim, 100);
  std::vector<std::thread> callers;
  for (int i = 0; i < 8; ++i)
    callers.emplace_back([&] {
      const auto features = Input(40, 1.0f);
      EXPECT_EQ(batcher.Run(features, 40), (std::vector<float>{40.0f, 1.0f}));
    });
  for (auto& caller : callers) caller.join();
  for (const size_t size : harness.network.batch_sizes)
    EXPECT_LE(size, 2u);  // 2 x 40 frames fit in 100, 3 do not
  EXPECT_EQ(batcher.Totals().inputs, 8);
}

TEST(RequestBatcher, AFailingRunFailsItsCallersOnly) {
  Harness harness;
  pipeline::RequestBatcher batcher(harness.sessions, kDim, 100000);
  harness.network.fail_next = 1;
  const auto features = Input(10, 3.0f);
  try {
    batcher.Run(features, 10);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kResourceLimit);
    EXPECT_NE(std::string(e.what()).find("out of memory"), std::string::npos);
  }
  EXPECT_EQ(batcher.Run(features, 10), (std::vector<float>{10.0f, 3.0f}));
}

// A caller cancelled while its input waits behind a long batch leaves the
// queue at once with kCancelled; the batch and the other callers are
// unaffected, and its input never runs.
TEST(RequestBatcher, ACancelledCallerLeavesTheQueueWithoutWaiting) {
  Harness harness;
  harness.network.run_time = std::chrono::milliseconds(1500);
  // One input per batch: the second caller must wait for the first's run.
  pipeline::RequestBatcher batcher(harness.sessions, kDim, 10);
  std::thread first([&] {
    const auto features = Input(10, 1.0f);
    EXPECT_EQ(batcher.Run(features, 10), (std::vector<float>{10.0f, 1.0f}));
  });
  while (batcher.Totals().batches == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const CancelToken cancel = CancelToken::Create();
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel.Cancel();
  });
  const auto started = std::chrono::steady_clock::now();
  try {
    const auto features = Input(10, 2.0f);
    batcher.Run(features, 10, cancel);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCancelled);
  }
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  EXPECT_LT(waited, 1.0) << "waited for the running batch";
  canceller.join();
  first.join();
  EXPECT_EQ(batcher.Totals().inputs, 1) << "the cancelled input ran";
  // A token cancelled before the call: nothing is queued.
  const auto features = Input(10, 3.0f);
  EXPECT_THROW(batcher.Run(features, 10, cancel), Error);
  EXPECT_EQ(batcher.Totals().inputs, 1);
}

}  // namespace
}  // namespace voxprint
