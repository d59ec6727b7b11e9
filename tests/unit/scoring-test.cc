// Window planning (pyannote's chunking) and cosine similarity.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "scoring/windows.h"
#include "voxprint/error.h"
#include "voxprint/extractor.h"

namespace voxprint {
namespace {

using scoring::PlanChunks;

TEST(PlanChunks, ExactFitHasNoPaddedChunk) {
  // 30 s, 3 s every 1 s: 28 full chunks, the last ends exactly at 30 s.
  const auto plan = PlanChunks(480000, 3.0, 1.0, 16000);
  EXPECT_EQ(plan.chunk_samples, 48000);
  EXPECT_EQ(plan.step_samples, 16000);
  ASSERT_EQ(plan.starts.size(), 28u);
  EXPECT_EQ(plan.starts.back(), 27 * 16000);
}

TEST(PlanChunks, OneSampleMoreAddsAPaddedChunk) {
  const auto plan = PlanChunks(480001, 3.0, 1.0, 16000);
  ASSERT_EQ(plan.starts.size(), 29u);
  EXPECT_EQ(plan.starts.back(), 28 * 16000);
}

TEST(PlanChunks, ShorterThanOneChunkGivesOnePaddedChunk) {
  const auto plan = PlanChunks(16000, 3.0, 1.0, 16000);
  ASSERT_EQ(plan.starts.size(), 1u);
  EXPECT_EQ(plan.starts[0], 0);
}

TEST(PlanChunks, MatchesTheKitsWindowCounts) {
  // Window counts of the reference kit (expected/*.sliding_*.npy).
  EXPECT_EQ(PlanChunks(32000, 1.5, 0.75, 16000).starts.size(), 2u);
  EXPECT_EQ(PlanChunks(480000, 5.0, 0.5, 16000).starts.size(), 51u);
  EXPECT_EQ(PlanChunks(480001, 5.0, 0.5, 16000).starts.size(), 52u);
  EXPECT_EQ(PlanChunks(480000, 1.5, 0.75, 16000).starts.size(), 39u);
  EXPECT_EQ(PlanChunks(480001, 1.5, 0.75, 16000).starts.size(), 40u);
}

TEST(PlanChunks, RoundsDurationsToSamples) {
  const auto plan = PlanChunks(100000, 1.00004, 0.50003, 16000);
  EXPECT_EQ(plan.chunk_samples, 16001);
  EXPECT_EQ(plan.step_samples, 8000);
}

TEST(PlanChunks, RefusesZeroLengthWindowsAndSteps) {
  EXPECT_THROW(PlanChunks(1000, 0.0, 1.0, 16000), Error);
  EXPECT_THROW(PlanChunks(1000, 1.0, 0.00001, 16000), Error);
  EXPECT_THROW(PlanChunks(1000, 1.0, -1.0, 16000), Error);
}

// No float->integer conversion out of range: times and sizes beyond any
// input are refused (UBSan would flag the conversion itself).
TEST(PlanChunks, RefusesSizesNoIntegerCanHold) {
  for (const double huge :
       {1e20, 1e300, std::numeric_limits<double>::infinity(),
        std::numeric_limits<double>::quiet_NaN()}) {
    EXPECT_THROW(PlanChunks(1000, huge, 1.0, 16000), Error) << huge;
    EXPECT_THROW(PlanChunks(1000, 1.0, huge, 16000), Error) << huge;
    EXPECT_THROW(scoring::SampleAtTime(huge, 16000), Error) << huge;
  }
  EXPECT_THROW(scoring::SampleAtTime(-1.0, 16000), Error);
  EXPECT_EQ(scoring::SampleAtTime(1e6, 16000), 16000000000);
  EXPECT_EQ(scoring::SampleAtTime(12.5, 16000), 200000);
}

TEST(PlanChunks, ChunkCountIsTheNumberOfChunks) {
  for (const int64_t n : {1, 15999, 16000, 47999, 48000, 48001, 480000})
    for (const double step : {0.25, 1.0, 3.5})
      EXPECT_EQ(
          scoring::ChunkCount(n, 48000, std::llround(step * 16000)),
          static_cast<int64_t>(PlanChunks(n, 3.0, step, 16000).starts.size()))
          << n << " " << step;
}

TEST(Cosine, RefusesNonFiniteValues) {
  const std::vector<float> a = {1, 0, 0},
                           b = {std::numeric_limits<float>::quiet_NaN(), 0, 0},
                           c = {std::numeric_limits<float>::infinity(), 0, 0};
  EXPECT_THROW(CosineSimilarity(a, b), Error);
  EXPECT_THROW(CosineSimilarity(c, a), Error);
}

TEST(Cosine, KnownValues) {
  const std::vector<float> a = {1, 0, 0}, b = {0, 1, 0}, c = {2, 0, 0},
                           d = {-1, 0, 0}, zero = {0, 0, 0};
  EXPECT_DOUBLE_EQ(CosineSimilarity(a, b), 0.0);
  EXPECT_DOUBLE_EQ(CosineSimilarity(a, c), 1.0);
  EXPECT_DOUBLE_EQ(CosineSimilarity(a, d), -1.0);
  EXPECT_DOUBLE_EQ(CosineSimilarity(a, zero), 0.0);
  const std::vector<float> e = {1, 1}, f = {1, 0};
  EXPECT_NEAR(CosineSimilarity(e, f), 1.0 / std::sqrt(2.0), 1e-12);
}

TEST(Cosine, RefusesSizeMismatch) {
  const std::vector<float> a = {1, 2}, b = {1, 2, 3};
  try {
    CosineSimilarity(a, b);
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(EmbedRequest, ValidateNamesTheBadField) {
  EmbedRequest request;
  request.mode = WindowMode::kSliding;
  request.window_step_s = 0;
  try {
    request.Validate();
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(error.what()).find("step"), std::string::npos);
  }
  request = {};
  request.start_s = 5;
  request.end_s = 2;
  EXPECT_THROW(request.Validate(), Error);
  request.end_s = 6;
  EXPECT_NO_THROW(request.Validate());
}

}  // namespace
}  // namespace voxprint
