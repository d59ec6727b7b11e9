// The bounded-memory path for long whole-file embeddings: the streaming
// resampler and decoder against their in-memory counterparts, and the
// two-pass streaming embedding against the in-memory pipeline.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "audio/stream-decoder.h"
#include "audio/streaming-resampler.h"
#include "support/reference-kit.h"
#include "support/wav-builder.h"
#include "voxprint/audio.h"
#include "voxprint/error.h"
#include "voxprint/extractor.h"

namespace voxprint {
namespace {

using testing::ReferenceDir;

std::vector<float> RandomSignal(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = uniform(rng);
  return x;
}

// Feeds `x` in blocks of `block` samples (0: random sizes up to 5000).
std::vector<float> StreamResample(std::span<const float> x, int from_hz,
                                  int to_hz, size_t block, uint32_t seed) {
  audio::StreamingResampler resampler(from_hz, to_hz);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> sizes(0, 5000);
  std::vector<float> out;
  size_t i = 0;
  while (i < x.size()) {
    const size_t n = std::min(x.size() - i, block > 0 ? block : sizes(rng));
    resampler.Push(x.subspan(i, n), &out);
    i += n;
  }
  resampler.Finish(&out);
  return out;
}

void ExpectBitIdentical(const std::vector<float>& expected,
                        const std::vector<float>& actual,
                        const std::string& what) {
  ASSERT_EQ(expected.size(), actual.size()) << what;
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (std::memcmp(&expected[i], &actual[i], sizeof(float)) != 0) {
      if (mismatches++ == 0) first = i;
    }
  }
  EXPECT_EQ(mismatches, 0u)
      << what << ": first at " << first << " (" << expected[first] << " vs "
      << actual[first] << ")";
}

TEST(StreamingResamplerTest, EqualsResampleBitForBit) {
  // Lengths on both sides of torch's summation switch (20480 padded
  // samples), and block sizes from single samples to large blocks.
  const int rates[] = {44100, 8000, 48000, 22050, 16000};
  const int64_t lengths[] = {1, 37, 5000, 20000, 20480, 21000, 300007};
  const size_t blocks[] = {1, 7, 160, 4096, 0, 1u << 20};
  uint32_t seed = 1;
  for (const int from : rates) {
    for (const int64_t n : lengths) {
      const std::vector<float> x = RandomSignal(n, seed++);
      const std::vector<float> expected = Resample(x, from, 16000);
      for (const size_t block : blocks) {
        if (block == 1 && n > 30000) continue;  // slow and adds nothing
        ExpectBitIdentical(expected,
                           StreamResample(x, from, 16000, block, seed),
                           std::to_string(from) + " Hz, " + std::to_string(n) +
                               " samples, blocks of " + std::to_string(block));
      }
    }
  }
}

TEST(StreamingResamplerTest, RefusesInputAfterFinish) {
  audio::StreamingResampler resampler(44100, 16000);
  std::vector<float> out;
  resampler.Finish(&out);
  const float one = 1.0f;
  EXPECT_THROW(resampler.Push(std::span<const float>(&one, 1), &out), Error);
}

TEST(StreamDecoderTest, GivesTheSamplesOfDecodeAudioFile) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  for (const char* name : {"stereo_44k.wav", "sample.mp3", "sample.ogg",
                           "sample_48k_24bit.flac", "sample.m4a"}) {
    const std::string path = (ReferenceDir() / "audio" / name).string();
    const DecodedAudio whole = DecodeAudioFile(path);
    auto stream = audio::StreamDecoder::OpenFile(path, {});
    EXPECT_GT(stream->HeaderDurationSeconds(), 0.0) << name;
    std::vector<float> samples, block;
    while (stream->Next(&block)) {
      samples.insert(samples.end(), block.begin(), block.end());
    }
    EXPECT_EQ(stream->SampleRateHz(), whole.mono.sample_rate_hz) << name;
    EXPECT_EQ(stream->Info().frames, whole.info.frames) << name;
    EXPECT_EQ(stream->Info().channels, whole.info.channels) << name;
    EXPECT_EQ(stream->Info().codec, whole.info.codec) << name;
    ExpectBitIdentical(whole.mono.samples, samples, name);
  }
}

TEST(StreamDecoderTest, ReportsErrorsAsDecodeAudioFileDoes) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const std::string path =
      (ReferenceDir() / "audio" / "not_audio.wav").string();
  try {
    auto stream = audio::StreamDecoder::OpenFile(path, {});
    std::vector<float> block;
    while (stream->Next(&block)) {
    }
    FAIL() << "no error for " << path;
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kUnsupportedInput) << error.what();
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos);
  }
}

// A mono IEEE-float WAV (decoded exactly as it is written).
std::vector<uint8_t> FloatWav(std::span<const float> samples, int rate_hz) {
  const uint64_t data_bytes = samples.size() * sizeof(float);
  std::vector<uint8_t> bytes =
      testing::WavHeader(3, 1, static_cast<uint32_t>(rate_hz), 32, data_bytes);
  const auto* data = reinterpret_cast<const uint8_t*>(samples.data());
  bytes.insert(bytes.end(), data, data + data_bytes);
  return bytes;
}

TEST(LongAudioTest, StreamingWholeEmbeddingEqualsInMemory) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  // 2.5 minutes at 44.1 kHz (downmix and resampling on the way), long
  // enough for the network to run as several time tiles.
  const DecodedAudio piece =
      DecodeAudioFile((ReferenceDir() / "audio" / "stereo_44k.wav").string());
  ASSERT_EQ(piece.mono.sample_rate_hz, 44100);
  std::vector<float> samples;
  for (int i = 0; i < 5; ++i) {
    samples.insert(samples.end(), piece.mono.samples.begin(),
                   piece.mono.samples.end());
  }
  const std::vector<uint8_t> wav = FloatWav(samples, 44100);

  ExtractorOptions options;
  options.model_path =
      (ReferenceDir() / "models" / "pytorch_model.bin").string();
  options.device = "cpu";
  options.streaming_threshold_s = 60.0;
  const Extractor extractor(options);

  // EmbedSamples always runs in memory; EmbedBytes streams above 60 s.
  const EmbeddingResult in_memory = extractor.EmbedSamples(samples, 44100);
  const EmbeddingResult streamed = extractor.EmbedBytes(wav, "long.wav");
  ASSERT_EQ(streamed.embedding.size(), in_memory.embedding.size());
  EXPECT_LE(testing::RelativeL2(streamed.embedding, in_memory.embedding), 1e-5);
  EXPECT_DOUBLE_EQ(streamed.duration_s, in_memory.duration_s);
  EXPECT_EQ(streamed.audio.frames, in_memory.audio.frames);
  EXPECT_EQ(streamed.audio.sample_rate_hz, 44100);
  EXPECT_EQ(streamed.audio.container, "wav");

  // Below the threshold, and with an excerpt, nothing changes either.
  const std::vector<uint8_t> short_wav =
      FloatWav(std::span<const float>(samples).first(44100 * 20), 44100);
  const EmbeddingResult short_result =
      extractor.EmbedBytes(short_wav, "short.wav");
  EXPECT_NEAR(short_result.duration_s, 20.0, 1e-3);
}

}  // namespace
}  // namespace voxprint
