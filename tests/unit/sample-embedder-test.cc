// pipeline::SampleEmbedder: the features it hands the network are exactly
// those of the reference's recipe (each sliding window zero-padded to full
// length, its own fbank and mean subtraction; the whole input's fbank), even
// though it computes a batch of windows from one fbank of their span and a
// long input's fbank on several threads. A recording session stands in for
// the network to see those features.
#include "pipeline/sample-embedder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "pipeline/session-pool.h"
#include "scoring/windows.h"
#include "voxprint/backend.h"
#include "voxprint/error.h"
#include "voxprint/features.h"

namespace voxprint {
namespace {

constexpr int kDim = 4;

// Every Run's inputs, in order; embeddings are the call's running count.
struct Recorded {
  std::vector<std::vector<float>> features;  // per run
  std::vector<int> batches;
  std::vector<int64_t> frames;
};

class RecordingSession final : public Session {
 public:
  explicit RecordingSession(Recorded* recorded) : recorded_(recorded) {}
  std::vector<float> Run(std::span<const float> features, int batch,
                         int64_t frames) override {
    recorded_->features.emplace_back(features.begin(), features.end());
    recorded_->batches.push_back(batch);
    recorded_->frames.push_back(frames);
    return std::vector<float>(static_cast<size_t>(batch) * kDim,
                              static_cast<float>(recorded_->batches.size()));
  }

 private:
  Recorded* recorded_;
};

class RecordingModel final : public PreparedModel {
 public:
  explicit RecordingModel(Recorded* recorded) : recorded_(recorded) {}
  std::unique_ptr<Session> NewSession() const override {
    return std::make_unique<RecordingSession>(recorded_);
  }
  int EmbeddingDim() const override { return kDim; }

 private:
  Recorded* recorded_;
};

std::vector<float> Speechlike(size_t count, uint32_t seed) {
  std::mt19937 random(seed);
  std::normal_distribution<float> noise(0.0f, 0.1f);
  std::vector<float> samples(count);
  for (size_t i = 0; i < count; ++i)
    samples[i] = 0.3f * std::sin(0.01f * static_cast<float>(i)) + noise(random);
  return samples;
}

// The reference's recipe for window `index` of `plan`.
std::vector<float> ReferenceWindow(const std::vector<float>& samples,
                                   const scoring::ChunkPlan& plan,
                                   size_t index) {
  std::vector<float> chunk(plan.chunk_samples, 0.0f);
  const int64_t start = plan.starts[index];
  const int64_t available = std::clamp<int64_t>(
      static_cast<int64_t>(samples.size()) - start, 0, plan.chunk_samples);
  std::copy_n(samples.begin() + start, available, chunk.begin());
  Features features = ComputeFbank(chunk);
  SubtractMeanOverTime(features);
  return features.values;
}

struct Harness {
  Recorded recorded;
  pipeline::SessionPool sessions{std::make_shared<RecordingModel>(&recorded),
                                 1};
};

void ExpectWindowsAsReference(const std::vector<float>& samples,
                              double duration_s, double step_s,
                              int64_t batch_frames) {
  Harness harness;
  const FbankOptions fbank;
  const pipeline::SampleEmbedder embedder(fbank, harness.sessions, kDim,
                                          batch_frames);
  EmbedRequest request;
  request.mode = WindowMode::kSliding;
  request.window_duration_s = duration_s;
  request.window_step_s = step_s;
  const auto windows = embedder.EmbedSliding(samples, request, 0.0, "x");
  const scoring::ChunkPlan plan =
      scoring::PlanChunks(static_cast<int64_t>(samples.size()), duration_s,
                          step_s, fbank.sample_rate_hz);
  ASSERT_EQ(windows.size(), plan.starts.size());
  const int64_t frames = fbank.NumFrames(plan.chunk_samples);
  const size_t per_window = static_cast<size_t>(frames) * fbank.num_mel_bins;
  size_t index = 0;
  for (size_t run = 0; run < harness.recorded.batches.size(); ++run) {
    const int batch = harness.recorded.batches[run];
    EXPECT_EQ(harness.recorded.frames[run], frames);
    EXPECT_LE(batch, std::max<int64_t>(1, batch_frames / frames));
    for (int b = 0; b < batch; ++b, ++index) {
      const std::vector<float> expected = ReferenceWindow(samples, plan, index);
      const std::vector<float> actual(
          harness.recorded.features[run].begin() + b * per_window,
          harness.recorded.features[run].begin() + (b + 1) * per_window);
      EXPECT_EQ(actual, expected) << "window " << index;
    }
  }
  EXPECT_EQ(index, plan.starts.size());
}

TEST(SampleEmbedder, SlidingWindowFeaturesAreTheReferenceRecipeExactly) {
  const auto samples = Speechlike(16000 * 11 + 1234, 1);
  // Steps of whole frames (one fbank per batch), with a padded last window.
  ExpectWindowsAsReference(samples, 3.0, 1.0, 6000);
  ExpectWindowsAsReference(samples, 1.5, 0.75, 1000);
  // Batches of one window; and a step that is no whole number of frames.
  ExpectWindowsAsReference(samples, 3.0, 1.0, 300);
  ExpectWindowsAsReference(samples, 2.0, 0.333, 6000);
  // Windows that do not overlap (each its own fbank).
  ExpectWindowsAsReference(samples, 1.0, 2.5, 6000);
  // Shorter than one window: a single padded window.
  ExpectWindowsAsReference(Speechlike(16000, 2), 3.0, 1.0, 6000);
}

TEST(SampleEmbedder, LongInputFeaturesAreOneFbankExactly) {
  Harness harness;
  const FbankOptions fbank;
  const pipeline::SampleEmbedder embedder(fbank, harness.sessions, kDim, 6000);
  // 61 s: several threads' worth of frames, split at uneven points.
  const auto samples = Speechlike(16000 * 61 + 77, 3);
  Features expected = ComputeFbank(samples);
  SubtractMeanOverTime(expected);
  const Features actual = embedder.FeaturesOf(samples, "long");
  EXPECT_EQ(actual.num_frames, expected.num_frames);
  EXPECT_EQ(actual.values, expected.values);
}

TEST(SampleEmbedder, BadSamplesAreReportedWithTheirIndexAndName) {
  Harness harness;
  const pipeline::SampleEmbedder embedder(FbankOptions{}, harness.sessions,
                                          kDim, 6000);
  auto samples = Speechlike(16000 * 40, 4);
  samples[16000 * 33] = std::numeric_limits<float>::quiet_NaN();
  try {
    embedder.FeaturesOf(samples, "bad.wav");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptInput);
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("bad.wav: ", 0), 0u) << message;
    EXPECT_NE(message.find(std::to_string(16000 * 33)), std::string::npos)
        << message;
  }
  EXPECT_EQ(harness.recorded.batches.size(), 0u);
}

}  // namespace
}  // namespace voxprint
