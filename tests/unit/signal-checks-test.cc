// Warnings on degenerate input and the marking of zero-padded windows
// (pipeline/signal-checks.h), and the same through the Extractor on the
// kit's silent, short, truncated and padded cases.
#include "pipeline/signal-checks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "support/reference-kit.h"
#include "voxprint/extractor.h"

namespace voxprint {
namespace {

using pipeline::DeclaredSeconds;
using pipeline::LengthWarnings;
using pipeline::MarkPaddedWindows;
using pipeline::SignalWarnings;

std::vector<std::string> Codes(const std::vector<ResultWarning>& warnings) {
  std::vector<std::string> codes;
  for (const ResultWarning& warning : warnings) codes.push_back(warning.code);
  return codes;
}

// `seconds` of a 200 Hz tone at `amplitude`, then `silence_s` of zeros.
std::vector<float> Tone(double seconds, float amplitude, double silence_s = 0) {
  std::vector<float> samples(
      static_cast<size_t>((seconds + silence_s) * 16000));
  for (size_t i = 0; i < static_cast<size_t>(seconds * 16000); ++i)
    samples[i] =
        amplitude * static_cast<float>(std::sin(2 * M_PI * 200 * i / 16000.0));
  return samples;
}

using Codes_ = std::vector<std::string>;

TEST(SignalWarnings, SteadySoundHasNone) {
  EXPECT_EQ(Codes(SignalWarnings(Tone(5, 0.3f))), Codes_{});
}

TEST(SignalWarnings, ZerosAndNearSilenceAreNoSignal) {
  EXPECT_EQ(Codes(SignalWarnings(std::vector<float>(32000, 0.0f))),
            Codes_{"no_signal"});
  EXPECT_EQ(Codes(SignalWarnings(Tone(5, 5e-4f))), Codes_{"no_signal"});
}

TEST(SignalWarnings, UnderTwoSecondsOfSoundIsShortSpeech) {
  EXPECT_EQ(Codes(SignalWarnings(Tone(1.5, 0.3f, 8))), Codes_{"short_speech"});
}

TEST(SignalWarnings, SoundInAFewPercentIsLittleSpeech) {
  EXPECT_EQ(Codes(SignalWarnings(Tone(2.5, 0.3f, 30))),
            Codes_{"little_speech"});
}

TEST(SignalWarnings, FullScaleSamplesAreClipping) {
  std::vector<float> samples = Tone(5, 3.0f);
  for (float& x : samples) x = std::clamp(x, -1.0f, 1.0f);
  EXPECT_EQ(Codes(SignalWarnings(samples)), Codes_{"clipping"});
}

TEST(LengthWarnings, DecodedClearlyShorterThanDeclaredIsTruncated) {
  EXPECT_EQ(Codes(LengthWarnings(0.5, 30.0)), Codes_{"truncated"});
  EXPECT_EQ(Codes(LengthWarnings(30.0, 30.04)), Codes_{});  // MP3 estimate
  EXPECT_EQ(Codes(LengthWarnings(3.0, 0.0)), Codes_{});     // unknown
}

// A RIFF WAV header: fmt (16 kHz mono 16-bit), an optional LIST chunk of
// `list_bytes`, data chunk declaring `data_bytes`.
std::vector<uint8_t> WavHead(uint32_t data_bytes, uint32_t list_bytes = 0) {
  std::vector<uint8_t> head;
  const auto tag = [&](const char* text) {
    head.insert(head.end(), text, text + 4);
  };
  const auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i)
      head.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  const auto u16 = [&](uint16_t v) {
    head.push_back(static_cast<uint8_t>(v));
    head.push_back(static_cast<uint8_t>(v >> 8));
  };
  tag("RIFF");
  u32(36 + data_bytes);
  tag("WAVE");
  tag("fmt ");
  u32(16);
  u16(1);
  u16(1);
  u32(16000);
  u32(32000);
  u16(2);
  u16(16);
  if (list_bytes) {
    tag("LIST");
    u32(list_bytes);
    head.resize(head.size() + list_bytes + (list_bytes & 1));
  }
  tag("data");
  u32(data_bytes);
  return head;
}

TEST(DeclaredSeconds, ReadsTheDataChunkOfAWav) {
  EXPECT_DOUBLE_EQ(DeclaredSeconds(WavHead(960000)), 30.0);
  EXPECT_DOUBLE_EQ(DeclaredSeconds(WavHead(64000, 51)), 2.0);  // odd, padded
}

TEST(DeclaredSeconds, SaysNothingForOtherOrBrokenInput) {
  EXPECT_EQ(DeclaredSeconds({}), 0.0);
  const std::string text = "not a wav file at all";
  EXPECT_EQ(DeclaredSeconds(
                {reinterpret_cast<const uint8_t*>(text.data()), text.size()}),
            0.0);
  EXPECT_EQ(DeclaredSeconds(WavHead(0xFFFFFFFFu)), 0.0);  // streamed WAV
  // A chunk size pointing far past the bytes given: no read beyond them.
  std::vector<uint8_t> head = WavHead(1000, 8);
  const uint32_t huge = 0xFFFFFFF0u;  // the LIST chunk's size field
  std::memcpy(head.data() + 40, &huge, 4);
  EXPECT_EQ(DeclaredSeconds(head), 0.0);
  head = WavHead(1000);
  head.resize(head.size() - 6);  // data chunk header cut
  EXPECT_EQ(DeclaredSeconds(head), 0.0);
}

std::vector<WindowEmbedding> Windows(
    std::vector<std::pair<double, double>> spans) {
  std::vector<WindowEmbedding> windows;
  for (auto [start, end] : spans) windows.push_back({start, end, {1.0f}});
  return windows;
}

TEST(MarkPaddedWindows, FlagsTheWindowPastTheEndWithItsCoveredSpan) {
  auto windows = Windows({{0, 3}, {2, 5}, {4, 7}});
  std::vector<ResultWarning> warnings;
  MarkPaddedWindows(windows, 6.0, false, warnings);
  EXPECT_FALSE(windows[1].padded);
  EXPECT_TRUE(windows[2].padded);
  EXPECT_DOUBLE_EQ(windows[2].covered_end_s, 6.0);
  EXPECT_EQ(Codes(warnings), Codes_{"padded_window"});
}

TEST(MarkPaddedWindows, DropPartialRemovesItUnlessItIsTheOnlyWindow) {
  auto windows = Windows({{0, 3}, {2, 5}, {4, 7}});
  std::vector<ResultWarning> warnings;
  MarkPaddedWindows(windows, 6.0, true, warnings);
  EXPECT_EQ(windows.size(), 2u);
  EXPECT_TRUE(warnings.empty());

  auto one = Windows({{10, 13}});  // an excerpt from 10 s, 1 s long
  MarkPaddedWindows(one, 11.0, true, warnings);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_TRUE(one[0].padded);
  EXPECT_EQ(Codes(warnings), Codes_{"padded_window"});
}

TEST(MarkPaddedWindows, AWindowEndingOnTheLastSampleIsComplete) {
  auto windows = Windows({{27, 30}});
  std::vector<ResultWarning> warnings;
  MarkPaddedWindows(windows, 30.0, false, warnings);
  EXPECT_FALSE(windows[0].padded);
  EXPECT_TRUE(warnings.empty());
}

// Through the Extractor, on the kit (the network's numbers are untouched;
// golden tests hold those).
class SignalChecksKit : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::HasReferenceKit()) return;
    ExtractorOptions options;
    options.model_path =
        (testing::ReferenceDir() / "models/pytorch_model.bin").string();
    options.model_checksum = false;
    extractor_ = new Extractor(options);
  }
  static void TearDownTestSuite() {
    delete extractor_;
    extractor_ = nullptr;
  }
  static EmbeddingResult Embed(const std::string& name,
                               EmbedRequest request = {}) {
    return extractor_->EmbedFile(
        (testing::ReferenceDir() / "audio" / name).string(), request);
  }
  static Extractor* extractor_;
};
Extractor* SignalChecksKit::extractor_ = nullptr;

TEST_F(SignalChecksKit, KitInputsGetTheirWarnings) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  EXPECT_EQ(Codes(Embed("silence_2s.wav").warnings), Codes_{"no_signal"});
  EXPECT_EQ(Codes(Embed("short_1s.wav").warnings), Codes_{"short_speech"});
  const std::vector<std::string> truncated =
      Codes(Embed("truncated.wav").warnings);
  ASSERT_FALSE(truncated.empty());
  EXPECT_EQ(truncated[0], "truncated");
  // The same bytes from memory (the server's way).
  const std::vector<uint8_t> bytes =
      testing::ReadFileBytes(testing::ReferenceDir() / "audio/truncated.wav");
  EXPECT_EQ(Codes(extractor_->EmbedBytes(bytes, "truncated.wav").warnings)[0],
            "truncated");
}

TEST_F(SignalChecksKit, PaddedLastWindowIsMarkedAndCanBeDropped) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  EmbedRequest request;
  request.mode = WindowMode::kSliding;
  request.window_duration_s = 3.0;
  request.window_step_s = 2.0;
  request.start_s = 5.0;
  request.end_s = 12.5;  // windows 5-8, 7-10, 9-12, 11-14 (padded)
  EmbeddingResult result = Embed("sample.wav", request);
  ASSERT_EQ(result.windows.size(), 4u);
  EXPECT_FALSE(result.windows[2].padded);
  EXPECT_TRUE(result.windows[3].padded);
  EXPECT_DOUBLE_EQ(result.windows[3].end_s, 14.0);
  EXPECT_NEAR(result.windows[3].covered_end_s, 12.5, 1e-9);
  const std::vector<float> kept = result.windows[2].embedding;

  request.drop_partial = true;
  result = Embed("sample.wav", request);
  ASSERT_EQ(result.windows.size(), 3u);
  EXPECT_EQ(result.windows[2].embedding, kept);  // same numbers, one fewer
  EXPECT_EQ(Codes(result.warnings), Codes_{});
}

}  // namespace
}  // namespace voxprint
