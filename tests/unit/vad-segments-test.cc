// get_speech_timestamps' rules on synthetic probability sequences: each rule
// on its own (padding off), then the padding.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "voxprint/error.h"
#include "voxprint/vad.h"

namespace voxprint {
namespace {

constexpr int64_t kChunk = kVadChunkSamples;

// `runs` of (probability, chunks), concatenated.
std::vector<float> Probabilities(
    std::initializer_list<std::pair<float, int>> runs) {
  std::vector<float> values;
  for (const auto& [p, n] : runs) values.insert(values.end(), n, p);
  return values;
}

VadOptions NoPadding() {
  VadOptions options;
  options.speech_pad_ms = 0;
  return options;
}

std::vector<SpeechSegment> Segments(const std::vector<float>& probabilities,
                                    const VadOptions& options) {
  return SegmentsFromProbabilities(
      probabilities, static_cast<int64_t>(probabilities.size()) * kChunk,
      options);
}

TEST(VadSegmentsTest, SilenceHasNoSegments) {
  EXPECT_TRUE(Segments(Probabilities({{0.2f, 100}}), {}).empty());
  EXPECT_TRUE(SegmentsFromProbabilities({}, 0).empty());
}

TEST(VadSegmentsTest, SpeechStartsAtTheThresholdInclusive) {
  const auto at = Segments(Probabilities({{0.1f, 10}, {0.5f, 20}, {0.1f, 10}}),
                           NoPadding());
  ASSERT_EQ(at.size(), 1u);
  EXPECT_EQ(at[0], (SpeechSegment{10 * kChunk, 30 * kChunk}));
  EXPECT_TRUE(Segments(Probabilities({{0.1f, 10}, {0.4999f, 20}, {0.1f, 10}}),
                       NoPadding())
                  .empty());
}

TEST(VadSegmentsTest, SpeechEndsOnlyBelowTheExitThreshold) {
  // 0.4 is under the threshold but above the exit threshold (0.35): the
  // segment runs on through it and ends where 0.1 starts.
  const auto segments = Segments(
      Probabilities({{0.9f, 20}, {0.4f, 20}, {0.1f, 10}}), NoPadding());
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments[0], (SpeechSegment{0, 40 * kChunk}));

  VadOptions lower_exit = NoPadding();
  lower_exit.neg_threshold = 0.05;
  const auto held = Segments(
      Probabilities({{0.9f, 20}, {0.1f, 20}, {0.01f, 10}}), lower_exit);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0], (SpeechSegment{0, 40 * kChunk}));
}

TEST(VadSegmentsTest, DefaultExitThresholdIsThresholdMinus015) {
  EXPECT_NEAR(VadOptions{}.NegThreshold(), 0.35, 1e-12);
  VadOptions low;
  low.threshold = 0.1;
  EXPECT_NEAR(low.NegThreshold(), 0.01, 1e-12);
  low.neg_threshold = 0.0;
  EXPECT_EQ(low.NegThreshold(), 0.0);
}

TEST(VadSegmentsTest, ShortSilenceDoesNotSplit) {
  // 100 ms = 1600 samples, measured from the first silent chunk's start to
  // the current chunk's start: 4 silent chunks (1536 samples at the 4th)
  // are not enough, 5 are.
  const auto four =
      Segments(Probabilities({{0.9f, 20}, {0.1f, 4}, {0.9f, 20}, {0.1f, 10}}),
               NoPadding());
  ASSERT_EQ(four.size(), 1u);
  EXPECT_EQ(four[0], (SpeechSegment{0, 44 * kChunk}));

  const auto five =
      Segments(Probabilities({{0.9f, 20}, {0.1f, 5}, {0.9f, 20}, {0.1f, 10}}),
               NoPadding());
  ASSERT_EQ(five.size(), 2u);
  EXPECT_EQ(five[0], (SpeechSegment{0, 20 * kChunk}));
  EXPECT_EQ(five[1], (SpeechSegment{25 * kChunk, 45 * kChunk}));

  VadOptions longer = NoPadding();
  longer.min_silence_ms = 200;
  EXPECT_EQ(
      Segments(Probabilities({{0.9f, 20}, {0.1f, 5}, {0.9f, 20}, {0.1f, 10}}),
               longer)
          .size(),
      1u);
}

TEST(VadSegmentsTest, SpeechNotLongerThanMinSpeechIsDropped) {
  // 250 ms = 4000 samples: 8 chunks (4096) stay, 7 (3584) go.
  const auto eight =
      Segments(Probabilities({{0.1f, 10}, {0.9f, 8}, {0.1f, 10}}), NoPadding());
  ASSERT_EQ(eight.size(), 1u);
  EXPECT_EQ(eight[0], (SpeechSegment{10 * kChunk, 18 * kChunk}));
  EXPECT_TRUE(
      Segments(Probabilities({{0.1f, 10}, {0.9f, 7}, {0.1f, 10}}), NoPadding())
          .empty());
  // Strictly longer: exactly min_speech_ms is dropped.
  VadOptions exact = NoPadding();
  exact.min_speech_ms = 256;  // 4096 samples
  EXPECT_TRUE(
      Segments(Probabilities({{0.1f, 10}, {0.9f, 8}, {0.1f, 10}}), exact)
          .empty());
}

TEST(VadSegmentsTest, SpeechOpenAtTheEndEndsWithTheAudio) {
  const std::vector<float> probabilities =
      Probabilities({{0.1f, 10}, {0.9f, 20}});
  // The audio is shorter than the chunks (the last chunk was padded).
  const int64_t total = 30 * kChunk - 100;
  const auto segments =
      SegmentsFromProbabilities(probabilities, total, NoPadding());
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments[0], (SpeechSegment{10 * kChunk, total}));

  // Falling silent, but not for long enough: still the end of the audio.
  const auto fading =
      Segments(Probabilities({{0.9f, 20}, {0.1f, 3}}), NoPadding());
  ASSERT_EQ(fading.size(), 1u);
  EXPECT_EQ(fading[0], (SpeechSegment{0, 23 * kChunk}));

  // Too short at the end: dropped.
  EXPECT_TRUE(
      Segments(Probabilities({{0.1f, 10}, {0.9f, 7}}), NoPadding()).empty());
}

TEST(VadSegmentsTest, PaddingGrowsSegmentsWithinTheAudio) {
  // 30 ms = 480 samples each side; the gap (10 chunks) is wider than 960.
  const auto segments = Segments(
      Probabilities({{0.1f, 10}, {0.9f, 20}, {0.1f, 10}, {0.9f, 20}}), {});
  ASSERT_EQ(segments.size(), 2u);
  EXPECT_EQ(segments[0], (SpeechSegment{10 * kChunk - 480, 30 * kChunk + 480}));
  // The last end would pass the end of the audio: clamped.
  EXPECT_EQ(segments[1], (SpeechSegment{40 * kChunk - 480, 60 * kChunk}));

  // The first start cannot go below 0.
  const auto first = Segments(Probabilities({{0.9f, 20}, {0.1f, 10}}), {});
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0], (SpeechSegment{0, 20 * kChunk + 480}));
}

TEST(VadSegmentsTest, ANarrowGapIsSplitInHalf) {
  // Pad 100 ms = 1600 samples: a gap of 5 chunks (2560 < 3200) goes half
  // to each side instead of overlapping.
  VadOptions options;
  options.speech_pad_ms = 100;
  const auto segments =
      Segments(Probabilities(
                   {{0.1f, 10}, {0.9f, 20}, {0.1f, 5}, {0.9f, 20}, {0.1f, 10}}),
               options);
  ASSERT_EQ(segments.size(), 2u);
  EXPECT_EQ(segments[0].start_sample, 10 * kChunk - 1600);
  EXPECT_EQ(segments[0].end_sample, 30 * kChunk + 1280);
  EXPECT_EQ(segments[1].start_sample, 35 * kChunk - 1280);
  EXPECT_EQ(segments[0].end_sample, segments[1].start_sample);
  EXPECT_EQ(segments[1].end_sample, 55 * kChunk + 1600);
}

TEST(VadSegmentsTest, FractionalPaddingRoundsDown) {
  VadOptions options;
  options.speech_pad_ms = 30.03;  // 480.48 samples
  const auto segments =
      Segments(Probabilities({{0.1f, 10}, {0.9f, 20}, {0.1f, 10}}), options);
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments[0], (SpeechSegment{10 * kChunk - 481, 30 * kChunk + 480}));
}

ErrorCode ValidationError(const VadOptions& options) {
  try {
    options.Validate();
  } catch (const Error& error) {
    return error.code();
  }
  return ErrorCode::kInternal;
}

TEST(VadSegmentsTest, OutOfRangeOptionsAreInvalidArguments) {
  VadOptions options;
  options.threshold = 1.5;
  EXPECT_EQ(ValidationError(options), ErrorCode::kInvalidArgument);
  options = {};
  options.threshold = std::nan("");
  EXPECT_EQ(ValidationError(options), ErrorCode::kInvalidArgument);
  options = {};
  options.neg_threshold = 0.6;  // above the threshold
  EXPECT_EQ(ValidationError(options), ErrorCode::kInvalidArgument);
  options = {};
  options.min_speech_ms = -1;
  EXPECT_EQ(ValidationError(options), ErrorCode::kInvalidArgument);
  options = {};
  options.speech_pad_ms = std::numeric_limits<double>::infinity();
  EXPECT_EQ(ValidationError(options), ErrorCode::kInvalidArgument);
  options = {};
  EXPECT_NO_THROW(options.Validate());
  EXPECT_EQ(options.ToString(),
            "threshold=0.5 neg_threshold=0.35 min_speech_ms=250 "
            "min_silence_ms=100 speech_pad_ms=30");
  EXPECT_THROW(SegmentsFromProbabilities({}, -1), Error);
}

}  // namespace
}  // namespace voxprint
