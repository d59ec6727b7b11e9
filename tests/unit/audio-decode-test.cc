// Decoding: every kit file, exact sample conversion, content-based format
// detection, memory vs file input, streams that change sample rate.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "audio/sample-convert.h"
#include "audio/stream-decoder.h"
#include "support/reference-kit.h"
#include "support/wav-builder.h"
#include "voxprint/audio.h"
#include "voxprint/error.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/samplefmt.h>
}

namespace voxprint {
namespace {

namespace fs = std::filesystem;
using testing::ReadFileBytes;
using testing::ReferenceDir;

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir()
      : path_(fs::temp_directory_path() /
              ("voxprint-audio-decode-" + std::to_string(::getpid()) + "-" +
               std::to_string(counter_++))) {
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

void WriteBytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

using testing::PutLittleEndian;

// A RIFF/WAVE file: format tag 1 (PCM) or 3 (IEEE float).
std::vector<uint8_t> MakeWav(int format_tag, int channels, int rate_hz,
                             int bits, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> wav =
      testing::WavHeader(format_tag, channels, rate_hz, bits, data.size());
  wav.insert(wav.end(), data.begin(), data.end());
  return wav;
}

// The PCM payload of a canonical WAV file, found by walking its chunks.
std::vector<uint8_t> WavData(const std::vector<uint8_t>& wav) {
  size_t pos = 12;
  while (pos + 8 <= wav.size()) {
    uint32_t size = 0;
    std::memcpy(&size, wav.data() + pos + 4, 4);
    if (std::memcmp(wav.data() + pos, "data", 4) == 0) {
      return {wav.begin() + pos + 8,
              wav.begin() + std::min<size_t>(wav.size(), pos + 8 + size)};
    }
    pos += 8 + size + (size & 1);
  }
  ADD_FAILURE() << "no data chunk";
  return {};
}

nlohmann::json Manifest() {
  std::ifstream in(ReferenceDir() / "manifest.json");
  return nlohmann::json::parse(in);
}

int64_t Ceil16k(int64_t frames, int rate_hz) {
  const int64_t g = std::gcd<int64_t>(rate_hz, kModelSampleRateHz);
  const int64_t orig = rate_hz / g, target = kModelSampleRateHz / g;
  return (frames * target + orig - 1) / orig;
}

TEST(AudioDecodeTest, EveryManifestCaseDecodesToItsSampleCount) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const nlohmann::json manifest = Manifest();
  ASSERT_FALSE(manifest.at("cases").empty());
  for (const auto& entry : manifest.at("cases")) {
    const std::string audio = entry.at("audio");
    SCOPED_TRACE(audio);
    const Audio16k loaded = LoadAudio16k((ReferenceDir() / audio).string());
    EXPECT_EQ(static_cast<int64_t>(loaded.samples.size()),
              entry.at("samples_16k").get<int64_t>());
    EXPECT_EQ(static_cast<int64_t>(loaded.samples.size()),
              Ceil16k(loaded.info.frames, loaded.info.sample_rate_hz));
    const auto [lo, hi] =
        std::minmax_element(loaded.samples.begin(), loaded.samples.end());
    EXPECT_GE(*lo, -1.01f);
    EXPECT_LE(*hi, 1.01f);
    EXPECT_NEAR(loaded.info.DurationSeconds(), loaded.samples.size() / 16000.0,
                1e-3);
  }
}

struct ExpectedInfo {
  const char* file;
  int sample_rate_hz;
  int channels;
  const char* container;
  const char* codec;
};

TEST(AudioDecodeTest, ReportsTheOriginalStream) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const ExpectedInfo cases[] = {
      {"sample.wav", 16000, 1, "wav", "pcm_s16le"},
      {"dev00.wav", 16000, 1, "wav", "pcm_f32le"},
      {"stereo_44k.wav", 44100, 2, "wav", "pcm_s16le"},
      {"sample_8k.wav", 8000, 1, "wav", "pcm_s16le"},
      {"sample_48k_24bit.flac", 48000, 1, "flac", "flac"},
      {"sample.ogg", 16000, 1, "ogg", "vorbis"},
      {"sample.mp3", 44100, 1, "mp3", "mp3float"},
      {"sample.m4a", 44100, 2, "mov,mp4,m4a,3gp,3g2,mj2", "aac"},
      {"sample.webm", 48000, 1, "matroska,webm", "opus"},
  };
  for (const ExpectedInfo& expected : cases) {
    SCOPED_TRACE(expected.file);
    const DecodedAudio decoded =
        DecodeAudioFile((ReferenceDir() / "audio" / expected.file).string());
    EXPECT_EQ(decoded.info.sample_rate_hz, expected.sample_rate_hz);
    EXPECT_EQ(decoded.mono.sample_rate_hz, expected.sample_rate_hz);
    EXPECT_EQ(decoded.info.channels, expected.channels);
    EXPECT_EQ(decoded.info.container, expected.container);
    EXPECT_EQ(decoded.info.codec, expected.codec);
    EXPECT_EQ(decoded.info.frames,
              static_cast<int64_t>(decoded.mono.samples.size()));
    // Every kit file is about 30 s long.
    EXPECT_NEAR(decoded.info.DurationSeconds(), 30.0, 0.01);
  }
}

TEST(AudioDecodeTest, Pcm16WavEqualsItsDataDividedBy32768) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  for (const char* file : {"sample.wav", "sample_8k.wav", "short_1s.wav"}) {
    SCOPED_TRACE(file);
    const fs::path path = ReferenceDir() / "audio" / file;
    const std::vector<uint8_t> data = WavData(ReadFileBytes(path));
    std::vector<float> expected(data.size() / 2);
    for (size_t i = 0; i < expected.size(); ++i) {
      int16_t v;
      std::memcpy(&v, data.data() + 2 * i, 2);
      expected[i] = static_cast<float>(v) / 32768.0f;
    }
    const DecodedAudio decoded = DecodeAudioFile(path.string());
    ASSERT_EQ(decoded.mono.samples.size(), expected.size());
    EXPECT_TRUE(decoded.mono.samples == expected) << "not bit-identical";
  }
}

TEST(AudioDecodeTest, FloatWavIsTakenAsIs) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const fs::path path = ReferenceDir() / "audio" / "dev00.wav";
  const std::vector<uint8_t> data = WavData(ReadFileBytes(path));
  std::vector<float> expected(data.size() / 4);
  std::memcpy(expected.data(), data.data(), expected.size() * 4);
  const DecodedAudio decoded = DecodeAudioFile(path.string());
  EXPECT_TRUE(decoded.mono.samples == expected) << "not bit-identical";
}

TEST(AudioDecodeTest, StereoIsTheFloatMeanOfItsChannels) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const fs::path path = ReferenceDir() / "audio" / "stereo_44k.wav";
  const std::vector<uint8_t> data = WavData(ReadFileBytes(path));
  std::vector<float> interleaved(data.size() / 2);
  for (size_t i = 0; i < interleaved.size(); ++i) {
    int16_t v;
    std::memcpy(&v, data.data() + 2 * i, 2);
    interleaved[i] = static_cast<float>(v) / 32768.0f;
  }
  const DecodedAudio decoded = DecodeAudioFile(path.string());
  const std::vector<float> expected = DownmixToMono(interleaved, 2);
  ASSERT_EQ(decoded.mono.samples.size(), expected.size());
  EXPECT_TRUE(decoded.mono.samples == expected);
  // The channels differ, so the mean is neither of them.
  size_t differ = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    differ += interleaved[2 * i] != interleaved[2 * i + 1];
  }
  EXPECT_GT(differ, expected.size() / 2);
}

TEST(AudioDecodeTest, Flac24BitIsScaledBy2To23) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const DecodedAudio decoded = DecodeAudioFile(
      (ReferenceDir() / "audio" / "sample_48k_24bit.flac").string());
  ASSERT_FALSE(decoded.mono.samples.empty());
  size_t odd = 0;  // samples using the low bits a 16-bit source would not
  for (float s : decoded.mono.samples) {
    const double scaled = static_cast<double>(s) * 8388608.0;
    ASSERT_EQ(scaled, std::round(scaled)) << s;
    ASSERT_LE(std::abs(scaled), 8388608.0);
    odd += std::fmod(std::abs(scaled), 256.0) != 0.0;
  }
  EXPECT_GT(odd, decoded.mono.samples.size() / 2) << "not really 24-bit?";
}

TEST(AudioDecodeTest, BytesDecodeLikeTheFile) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const nlohmann::json manifest = Manifest();
  for (const auto& entry : manifest.at("cases")) {
    const std::string audio = entry.at("audio");
    SCOPED_TRACE(audio);
    const fs::path path = ReferenceDir() / audio;
    const DecodedAudio from_file = DecodeAudioFile(path.string());
    const std::vector<uint8_t> bytes = ReadFileBytes(path);
    const DecodedAudio from_bytes = DecodeAudioBytes(bytes, "upload");
    EXPECT_TRUE(from_bytes.mono.samples == from_file.mono.samples);
    EXPECT_EQ(from_bytes.info.sample_rate_hz, from_file.info.sample_rate_hz);
    EXPECT_EQ(from_bytes.info.codec, from_file.info.codec);
    const Audio16k loaded = LoadAudio16kFromBytes(bytes, "upload");
    EXPECT_EQ(static_cast<int64_t>(loaded.samples.size()),
              entry.at("samples_16k").get<int64_t>());
  }
}

TEST(AudioDecodeTest, FormatComesFromContentNotName) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  TempDir dir;
  const auto wav = ReadFileBytes(ReferenceDir() / "audio" / "sample.wav");
  const auto mp3 = ReadFileBytes(ReferenceDir() / "audio" / "sample.mp3");
  WriteBytes(dir.path() / "x.mp3", wav);
  WriteBytes(dir.path() / "x.wav", mp3);
  WriteBytes(dir.path() / "noextension", mp3);
  const DecodedAudio a = DecodeAudioFile((dir.path() / "x.mp3").string());
  EXPECT_EQ(a.info.container, "wav");
  EXPECT_EQ(a.mono.samples.size(), 480000u);
  const DecodedAudio b = DecodeAudioFile((dir.path() / "x.wav").string());
  EXPECT_EQ(b.info.container, "mp3");
  EXPECT_EQ(b.mono.samples.size(), 1323000u);
  EXPECT_EQ(DecodeAudioFile((dir.path() / "noextension").string())
                .mono.samples.size(),
            1323000u);
  EXPECT_EQ(DecodeAudioBytes(wav, "x.ogg").info.container, "wav");
}

// WAV in every PCM flavour FFmpeg's wav demuxer hands out: u8, s16, s24
// (arrives as s32), s32, f32, f64, with 1 and 3 channels.
TEST(AudioDecodeTest, EveryWavSampleFormatConvertsExactly) {
  struct Flavour {
    int format_tag;
    int bits;
  };
  const Flavour flavours[] = {{1, 8},  {1, 16}, {1, 24},
                              {1, 32}, {3, 32}, {3, 64}};
  const int frames = 1000;
  for (const Flavour& f : flavours) {
    for (int channels : {1, 3}) {
      SCOPED_TRACE("tag " + std::to_string(f.format_tag) + " bits " +
                   std::to_string(f.bits) + " channels " +
                   std::to_string(channels));
      std::vector<uint8_t> data;
      std::vector<float> interleaved;
      for (int i = 0; i < frames * channels; ++i) {
        // Deterministic values covering the full range, extremes included.
        const double x =
            i < 2 ? (i == 0 ? -1.0 : 0.999) : std::sin(i * 0.37) * 0.97;
        if (f.format_tag == 3 && f.bits == 32) {
          const float v = static_cast<float>(x);
          uint32_t u;
          std::memcpy(&u, &v, 4);
          PutLittleEndian(&data, u, 4);
          interleaved.push_back(v);
        } else if (f.format_tag == 3) {
          uint64_t u;
          std::memcpy(&u, &x, 8);
          PutLittleEndian(&data, u, 8);
          interleaved.push_back(static_cast<float>(x));
        } else if (f.bits == 8) {
          const int v =
              std::clamp(static_cast<int>(std::lround(x * 128)) + 128, 0, 255);
          data.push_back(static_cast<uint8_t>(v));
          interleaved.push_back((v - 128) / 128.0f);
        } else {
          const double full = std::ldexp(1.0, f.bits - 1);
          const int64_t v =
              std::clamp<int64_t>(std::llround(x * full), -full, full - 1);
          PutLittleEndian(&data, static_cast<uint64_t>(v), f.bits / 8);
          interleaved.push_back(static_cast<float>(v / full));
        }
      }
      const DecodedAudio decoded = DecodeAudioBytes(
          MakeWav(f.format_tag, channels, 22050, f.bits, data), "wav");
      EXPECT_EQ(decoded.info.channels, channels);
      EXPECT_EQ(decoded.info.sample_rate_hz, 22050);
      const std::vector<float> expected = DownmixToMono(interleaved, channels);
      ASSERT_EQ(decoded.mono.samples.size(), expected.size());
      for (size_t i = 0; i < expected.size(); ++i) {
        ASSERT_EQ(decoded.mono.samples[i], expected[i]) << "at " << i;
      }
    }
  }
}

// Planar layouts and the formats no kit file uses (s64, dbl).
TEST(AudioDecodeTest, AppendAsMonoHandlesEverySampleFormat) {
  const int frames = 5, channels = 2;
  const double values[channels][frames] = {{-1.0, -0.5, 0.0, 0.25, 0.75},
                                           {1.0, 0.5, 0.125, -0.25, -0.5}};
  auto check = [&](AVSampleFormat format, auto type_tag, double full) {
    using T = decltype(type_tag);
    SCOPED_TRACE(av_get_sample_fmt_name(format));
    const bool planar = av_sample_fmt_is_planar(format);
    std::vector<T> buffer(frames * channels);
    std::vector<float> interleaved;
    for (int i = 0; i < frames; ++i) {
      for (int c = 0; c < channels; ++c) {
        const double x = values[c][i];
        T v;
        if constexpr (std::is_same_v<T, uint8_t>) {
          v = static_cast<T>(std::clamp(x * full + 128, 0.0, 255.0));
        } else if constexpr (std::is_integral_v<T>) {
          v = static_cast<T>(std::clamp(x * full, -full, full - 1));
        } else {
          v = static_cast<T>(x);
        }
        buffer[planar ? c * frames + i : i * channels + c] = v;
        if constexpr (std::is_same_v<T, uint8_t>) {
          interleaved.push_back((static_cast<int>(v) - 128) / 128.0f);
        } else if constexpr (std::is_integral_v<T>) {
          interleaved.push_back(static_cast<float>(v) /
                                static_cast<float>(full));
        } else {
          interleaved.push_back(static_cast<float>(v));
        }
      }
    }
    const uint8_t* planes[channels];
    for (int c = 0; c < channels; ++c) {
      planes[c] = reinterpret_cast<const uint8_t*>(buffer.data()) +
                  (planar ? c * frames * sizeof(T) : 0);
    }
    std::vector<float> mono = {42.0f};  // appended to, not replaced
    ASSERT_TRUE(audio::AppendAsMono(format, planes, channels, frames, &mono));
    const std::vector<float> expected = DownmixToMono(interleaved, channels);
    ASSERT_EQ(mono.size(), 1 + expected.size());
    EXPECT_EQ(mono[0], 42.0f);
    for (int i = 0; i < frames; ++i) EXPECT_EQ(mono[1 + i], expected[i]);
  };
  check(AV_SAMPLE_FMT_U8, uint8_t{}, 128.0);
  check(AV_SAMPLE_FMT_U8P, uint8_t{}, 128.0);
  check(AV_SAMPLE_FMT_S16, int16_t{}, 32768.0);
  check(AV_SAMPLE_FMT_S16P, int16_t{}, 32768.0);
  check(AV_SAMPLE_FMT_S32, int32_t{}, 2147483648.0);
  check(AV_SAMPLE_FMT_S32P, int32_t{}, 2147483648.0);
  check(AV_SAMPLE_FMT_S64, int64_t{}, 9223372036854775808.0);
  check(AV_SAMPLE_FMT_S64P, int64_t{}, 9223372036854775808.0);
  check(AV_SAMPLE_FMT_FLT, float{}, 1.0);
  check(AV_SAMPLE_FMT_FLTP, float{}, 1.0);
  check(AV_SAMPLE_FMT_DBL, double{}, 1.0);
  check(AV_SAMPLE_FMT_DBLP, double{}, 1.0);
  std::vector<float> mono;
  const uint8_t* none[1] = {nullptr};
  EXPECT_FALSE(audio::AppendAsMono(AV_SAMPLE_FMT_NONE, none, 1, 1, &mono));
  EXPECT_TRUE(mono.empty());
}

TEST(AudioDecodeTest, DownmixIsTheFloat32ChannelMean) {
  const std::vector<float> mono = {0.1f, -0.2f, 0.3f};
  EXPECT_EQ(DownmixToMono(mono, 1), mono);
  const std::vector<float> stereo = {0.1f, 0.2f, -1.0f, 1.0f, 0.3f, 0.3f};
  const std::vector<float> mean = DownmixToMono(stereo, 2);
  ASSERT_EQ(mean.size(), 3u);
  EXPECT_EQ(mean[0], (0.1f + 0.2f) / 2.0f);
  EXPECT_EQ(mean[1], 0.0f);
  EXPECT_EQ(mean[2], 0.3f);
  const std::vector<float> three = {1.0f, 2.0f, 4.0f};
  EXPECT_EQ(DownmixToMono(three, 3)[0], 7.0f / 3.0f);
  EXPECT_TRUE(DownmixToMono({}, 2).empty());
  EXPECT_THROW(DownmixToMono(three, 2), Error);
  EXPECT_THROW(DownmixToMono(three, 0), Error);
}

// MPEG audio frames carry their own sample rate and channel mode, so
// concatenated MP2 streams change parameters midway. Each segment is brought
// to the first segment's rate; nothing is lost or stretched in time.
std::vector<uint8_t> EncodeMp2(int rate_hz, int channels, double seconds,
                               double freq_hz) {
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_MP2);
  if (codec == nullptr) return {};
  AVCodecContext* ctx = avcodec_alloc_context3(codec);
  ctx->sample_rate = rate_hz;
  ctx->sample_fmt = AV_SAMPLE_FMT_S16;
  av_channel_layout_default(&ctx->ch_layout, channels);
  ctx->bit_rate = 128000;
  std::vector<uint8_t> out;
  if (avcodec_open2(ctx, codec, nullptr) < 0) {
    avcodec_free_context(&ctx);
    return {};
  }
  AVFrame* frame = av_frame_alloc();
  AVPacket* packet = av_packet_alloc();
  const int total = static_cast<int>(seconds * rate_hz);
  auto drain = [&] {
    while (avcodec_receive_packet(ctx, packet) == 0) {
      out.insert(out.end(), packet->data, packet->data + packet->size);
      av_packet_unref(packet);
    }
  };
  for (int start = 0; start < total; start += ctx->frame_size) {
    frame->nb_samples = ctx->frame_size;
    frame->format = ctx->sample_fmt;
    frame->sample_rate = rate_hz;
    av_channel_layout_copy(&frame->ch_layout, &ctx->ch_layout);
    if (av_frame_get_buffer(frame, 0) < 0) break;
    auto* samples = reinterpret_cast<int16_t*>(frame->data[0]);
    for (int i = 0; i < ctx->frame_size; ++i) {
      const double t = static_cast<double>(start + i) / rate_hz;
      const auto v = static_cast<int16_t>(
          std::lround(8000 * std::sin(2 * M_PI * freq_hz * t)));
      for (int c = 0; c < channels; ++c) samples[i * channels + c] = v;
    }
    if (avcodec_send_frame(ctx, frame) < 0) break;
    av_frame_unref(frame);
    drain();
  }
  avcodec_send_frame(ctx, nullptr);
  drain();
  av_packet_free(&packet);
  av_frame_free(&frame);
  avcodec_free_context(&ctx);
  return out;
}

TEST(AudioDecodeTest, StreamThatChangesRateAndChannelsIsJoinedInTime) {
  const std::vector<uint8_t> first = EncodeMp2(32000, 2, 1.0, 440.0);
  const std::vector<uint8_t> second = EncodeMp2(16000, 1, 1.0, 440.0);
  const std::vector<uint8_t> third = EncodeMp2(48000, 2, 0.5, 440.0);
  if (first.empty() || second.empty() || third.empty()) {
    GTEST_SKIP() << "this FFmpeg has no MP2 encoder to build the input";
  }
  std::vector<uint8_t> joined = first;
  joined.insert(joined.end(), second.begin(), second.end());
  joined.insert(joined.end(), third.begin(), third.end());
  const DecodedAudio decoded = DecodeAudioBytes(joined, "joined.mp2");
  EXPECT_EQ(decoded.info.sample_rate_hz, 32000);
  EXPECT_EQ(decoded.info.channels, 2);
  EXPECT_EQ(decoded.mono.sample_rate_hz, 32000);
  // 2.5 s of audio in all, give or take the encoder's frame padding.
  EXPECT_NEAR(decoded.info.DurationSeconds(), 2.5, 0.2);
  // The tone goes on at 440 Hz throughout: count zero crossings per second
  // in the middle of each part.
  auto crossings_per_s = [&](double from_s, double to_s) {
    const auto& s = decoded.mono.samples;
    const size_t a = static_cast<size_t>(from_s * 32000);
    const size_t b = std::min(s.size(), static_cast<size_t>(to_s * 32000));
    int count = 0;
    for (size_t i = a + 1; i < b; ++i) count += (s[i - 1] < 0) != (s[i] < 0);
    return count / (to_s - from_s);
  };
  EXPECT_NEAR(crossings_per_s(0.2, 0.8), 880.0, 20.0);
  EXPECT_NEAR(crossings_per_s(1.2, 1.8), 880.0, 20.0);
  EXPECT_NEAR(crossings_per_s(2.1, 2.4), 880.0, 20.0);
}

// LoadAudio16k* decode and resample block by block (memory follows the 16 kHz
// length); the samples must be those of the two steps done one after the
// other on the whole signal, bit for bit.
::testing::AssertionResult SameBits(const std::vector<float>& actual,
                                    const std::vector<float>& expected) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << actual.size() << " samples, expected " << expected.size();
  }
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::memcmp(&actual[i], &expected[i], sizeof(float)) != 0) {
      return ::testing::AssertionFailure()
             << "sample " << i << " is " << actual[i] << ", expected "
             << expected[i];
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(AudioDecodeTest, Load16kStreamsTheSameSamplesAsResampleOfTheDecode) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  // 44.1 kHz stereo, 48 kHz 24-bit, 8 kHz, 16 kHz, and the lossy codecs.
  for (const char* file : {"stereo_44k.wav", "sample_48k_24bit.flac",
                           "sample_8k.wav", "sample.wav", "sample.mp3",
                           "sample.ogg", "sample.m4a", "sample.webm"}) {
    SCOPED_TRACE(file);
    const fs::path path = ReferenceDir() / "audio" / file;
    const DecodedAudio decoded = DecodeAudioFile(path.string());
    const std::vector<float> expected = Resample(
        decoded.mono.samples, decoded.mono.sample_rate_hz, kModelSampleRateHz);
    const Audio16k loaded = LoadAudio16k(path.string());
    EXPECT_TRUE(SameBits(loaded.samples, expected));
    EXPECT_EQ(loaded.info.frames, decoded.info.frames);
    EXPECT_EQ(loaded.info.sample_rate_hz, decoded.info.sample_rate_hz);
    EXPECT_EQ(loaded.info.channels, decoded.info.channels);
    EXPECT_EQ(loaded.info.container, decoded.info.container);
    EXPECT_EQ(loaded.info.codec, decoded.info.codec);
    const std::vector<uint8_t> bytes = ReadFileBytes(path);
    EXPECT_TRUE(SameBits(LoadAudio16kFromBytes(bytes, file).samples, expected));
  }
}

TEST(AudioDecodeTest, Load16kOfAStreamThatChangesRateIsExact) {
  const std::vector<uint8_t> first = EncodeMp2(44100, 2, 0.7, 300.0);
  const std::vector<uint8_t> second = EncodeMp2(22050, 1, 0.6, 500.0);
  if (first.empty() || second.empty()) {
    GTEST_SKIP() << "this FFmpeg has no MP2 encoder to build the input";
  }
  std::vector<uint8_t> joined = first;
  joined.insert(joined.end(), second.begin(), second.end());
  const DecodedAudio decoded = DecodeAudioBytes(joined, "joined.mp2");
  ASSERT_EQ(decoded.mono.sample_rate_hz, 44100);
  EXPECT_TRUE(
      SameBits(LoadAudio16kFromBytes(joined, "joined.mp2").samples,
               Resample(decoded.mono.samples, 44100, kModelSampleRateHz)));
}

TEST(AudioDecodeTest, DecodeAll16kUnlessLongerStopsPastItsBound) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const std::string path =
      (ReferenceDir() / "audio" / "sample_48k_24bit.flac").string();
  const Audio16k whole = LoadAudio16k(path);
  ASSERT_EQ(whole.samples.size(), 480000u);
  const AudioLimits limits;
  EXPECT_FALSE(audio::StreamDecoder::OpenFile(path, limits)
                   ->DecodeAll16kUnlessLonger(479999)
                   .has_value());
  EXPECT_FALSE(audio::StreamDecoder::OpenFile(path, limits)
                   ->DecodeAll16kUnlessLonger(16000)
                   .has_value());
  const std::optional<Audio16k> exact =
      audio::StreamDecoder::OpenFile(path, limits)
          ->DecodeAll16kUnlessLonger(480000);
  ASSERT_TRUE(exact.has_value());
  EXPECT_TRUE(SameBits(exact->samples, whole.samples));
  EXPECT_EQ(exact->info.frames, whole.info.frames);
}

// A request that times out while its file decodes (a compressed input that
// expands to the sample limit) must free its worker at the next block.
TEST(AudioDecodeTest, ACancelledTokenStopsTheDecodeAtTheNextBlock) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const std::string path =
      (ReferenceDir() / "audio" / "sample_48k_24bit.flac").string();
  const CancelToken cancel = CancelToken::Create();
  std::unique_ptr<audio::StreamDecoder> decoder =
      audio::StreamDecoder::OpenFile(path, AudioLimits{});
  decoder->SetCancel(cancel);
  std::vector<float> block;
  ASSERT_TRUE(decoder->Next(&block));
  cancel.Cancel();
  try {
    decoder->Next(&block);
    FAIL() << "decoding went on after the cancel";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kCancelled) << error.what();
  }
  std::unique_ptr<audio::StreamDecoder> whole =
      audio::StreamDecoder::OpenFile(path, AudioLimits{});
  whole->SetCancel(cancel);
  try {
    whole->DecodeAll16k();
    FAIL() << "DecodeAll16k went on after the cancel";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kCancelled) << error.what();
  }
}

TEST(AudioDecodeTest, ConcurrentDecodesAgree) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const char* files[] = {"sample.mp3", "sample.ogg", "sample.webm",
                         "stereo_44k.wav"};
  std::vector<std::vector<float>> serial;
  for (const char* file : files) {
    serial.push_back(
        LoadAudio16k((ReferenceDir() / "audio" / file).string()).samples);
  }
  std::vector<std::vector<float>> parallel(std::size(files));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < std::size(files); ++i) {
    threads.emplace_back([&, i] {
      parallel[i] =
          LoadAudio16k((ReferenceDir() / "audio" / files[i]).string()).samples;
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < std::size(files); ++i) {
    EXPECT_TRUE(parallel[i] == serial[i]) << files[i];
  }
}

// Not a pass/fail check: prints decode times for the report (best of 5).
TEST(AudioDecodeTest, DecodeSpeed) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  for (const char* file :
       {"sample.wav", "sample.mp3", "stereo_44k.wav", "sample_48k_24bit.flac",
        "sample.ogg", "sample.m4a", "sample.webm"}) {
    const std::string path = (ReferenceDir() / "audio" / file).string();
    double best_decode_ms = 1e9, best_load_ms = 1e9;
    for (int run = 0; run < 5; ++run) {
      const auto t0 = std::chrono::steady_clock::now();
      const DecodedAudio decoded = DecodeAudioFile(path);
      const auto t1 = std::chrono::steady_clock::now();
      const Audio16k loaded = LoadAudio16k(path);
      const auto t2 = std::chrono::steady_clock::now();
      ASSERT_FALSE(decoded.mono.samples.empty());
      ASSERT_FALSE(loaded.samples.empty());
      best_decode_ms =
          std::min(best_decode_ms,
                   std::chrono::duration<double, std::milli>(t1 - t0).count());
      best_load_ms =
          std::min(best_load_ms,
                   std::chrono::duration<double, std::milli>(t2 - t1).count());
    }
    std::cout << "[ timing   ] " << file << ": decode " << best_decode_ms
              << " ms, decode + resample to 16 kHz " << best_load_ms << " ms\n";
  }
}

}  // namespace
}  // namespace voxprint
