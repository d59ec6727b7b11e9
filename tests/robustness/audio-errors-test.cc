// Malformed, hostile and out-of-limit audio input: every case either decodes
// or throws voxprint::Error naming the input; nothing crashes, hangs or
// allocates without bound.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "support/reference-kit.h"
#include "support/wav-builder.h"
#include "voxprint/audio.h"
#include "voxprint/error.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;
using testing::ReadFileBytes;
using testing::ReferenceDir;

fs::path KitAudio(const std::string& file) {
  return ReferenceDir() / "audio" / file;
}

// Expects `load` to throw voxprint::Error whose message names `name`; returns
// its code (kInternal when it did not throw as expected).
ErrorCode ExpectError(const std::function<void()>& load,
                      const std::string& name) {
  try {
    load();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos)
        << "message does not name the input: " << e.what();
    EXPECT_NE(e.code(), ErrorCode::kInternal) << e.what();
    return e.code();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a voxprint::Error: " << e.what();
    return ErrorCode::kInternal;
  }
  ADD_FAILURE() << name << " decoded without error";
  return ErrorCode::kInternal;
}

// Decoding may succeed or fail cleanly, never anything else. Returns the
// number of samples, or -1 for a clean error.
int64_t DecodeOrError(const std::vector<uint8_t>& bytes,
                      const std::string& name) {
  try {
    const DecodedAudio decoded = DecodeAudioBytes(bytes, name);
    EXPECT_FALSE(decoded.mono.samples.empty()) << name;
    EXPECT_GT(decoded.mono.sample_rate_hz, 0) << name;
    return static_cast<int64_t>(decoded.mono.samples.size());
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    return -1;
  } catch (const std::exception& e) {
    ADD_FAILURE() << name << ": not a voxprint::Error: " << e.what();
    return -1;
  }
}

using testing::PutLittleEndian;

std::vector<uint8_t> WavWithHeader(int channels, uint32_t rate_hz,
                                   uint32_t data_bytes, size_t present_bytes,
                                   int format_tag = 1, int bits = 16) {
  std::vector<uint8_t> wav =
      testing::WavHeader(format_tag, channels, rate_hz, bits, data_bytes);
  std::mt19937 rng(1);
  for (size_t i = 0; i < present_bytes; ++i) wav.push_back(rng() & 0x3f);
  return wav;
}

TEST(AudioErrorsTest, ManifestErrorCases) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  std::ifstream in(ReferenceDir() / "manifest.json");
  const nlohmann::json manifest = nlohmann::json::parse(in);
  ASSERT_FALSE(manifest.at("errors").empty());
  for (const auto& entry : manifest.at("errors")) {
    const std::string audio = entry.at("audio");
    const std::string path = (ReferenceDir() / audio).string();
    SCOPED_TRACE(audio);
    if (audio == "audio/tiny_20ms.wav") {
      // Valid audio, only too short for the fbank, which refuses it.
      const Audio16k loaded = LoadAudio16k(path);
      EXPECT_EQ(loaded.samples.size(), 320u);
      EXPECT_EQ(loaded.info.sample_rate_hz, 16000);
    } else if (audio == "audio/truncated.wav") {
      // The header promises more than the file holds: the samples present
      // (15941 bytes of data, so 7970 samples) and nothing invented.
      try {
        const Audio16k loaded = LoadAudio16k(path);
        EXPECT_GT(loaded.samples.size(), 0u);
        EXPECT_LE(loaded.samples.size(), 7970u);
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
      }
    } else {
      const ErrorCode code = ExpectError([&] { LoadAudio16k(path); }, path);
      if (audio == "audio/empty.wav") {
        EXPECT_EQ(code, ErrorCode::kCorruptInput);
      } else if (audio == "audio/not_audio.wav") {
        EXPECT_EQ(code, ErrorCode::kUnsupportedInput);
      } else {
        EXPECT_TRUE(code == ErrorCode::kUnsupportedInput ||
                    code == ErrorCode::kCorruptInput)
            << ErrorCodeName(code);
      }
      // Same answer for the same bytes in memory.
      const std::vector<uint8_t> bytes = ReadFileBytes(path);
      EXPECT_EQ(ExpectError([&] { LoadAudio16kFromBytes(bytes, "upload.bin"); },
                            "upload.bin"),
                code);
    }
  }
}

TEST(AudioErrorsTest, MissingFileAndDirectoryAreIoErrors) {
  const std::string missing = "/nonexistent/voxprint/missing.wav";
  EXPECT_EQ(ExpectError([&] { DecodeAudioFile(missing); }, missing),
            ErrorCode::kIoError);
  const std::string dir = fs::temp_directory_path().string();
  EXPECT_EQ(ExpectError([&] { DecodeAudioFile(dir); }, dir),
            ErrorCode::kIoError);
}

TEST(AudioErrorsTest, ZeroBytes) {
  EXPECT_EQ(ExpectError([] { DecodeAudioBytes({}, "zero.wav"); }, "zero.wav"),
            ErrorCode::kCorruptInput);
  const fs::path empty = fs::temp_directory_path() /
                         ("voxprint-empty-" + std::to_string(::getpid()));
  std::ofstream(empty).close();
  EXPECT_EQ(
      ExpectError([&] { DecodeAudioFile(empty.string()); }, empty.string()),
      ErrorCode::kCorruptInput);
  fs::remove(empty);
}

TEST(AudioErrorsTest, RandomBytesNeverCrash) {
  std::mt19937 rng(99);
  int errors = 0;
  for (size_t size : {1, 2, 3, 4, 12, 44, 100, 1000, 4096, 65536, 300000}) {
    std::vector<uint8_t> bytes(size);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    errors += DecodeOrError(bytes, "random" + std::to_string(size)) < 0;
  }
  // Noise is not audio; at most a chance resemblance may slip through.
  EXPECT_GE(errors, 9);
}

TEST(AudioErrorsTest, TextAndVideoOnlyInputsAreUnsupported) {
  const std::string text = "hello, this is not audio\n";
  EXPECT_EQ(
      ExpectError(
          [&] {
            DecodeAudioBytes(
                {reinterpret_cast<const uint8_t*>(text.data()), text.size()},
                "notes.txt");
          },
          "notes.txt"),
      ErrorCode::kUnsupportedInput);

  // Y4M: raw video, two 16x16 4:2:0 frames, no audio stream.
  std::string y4m = "YUV4MPEG2 W16 H16 F25:1 Ip A1:1 C420jpeg\n";
  for (int frame = 0; frame < 2; ++frame) {
    y4m += "FRAME\n" + std::string(16 * 16 * 3 / 2, '\x80');
  }
  EXPECT_EQ(
      ExpectError(
          [&] {
            DecodeAudioBytes(
                {reinterpret_cast<const uint8_t*>(y4m.data()), y4m.size()},
                "clip.y4m");
          },
          "clip.y4m"),
      ErrorCode::kUnsupportedInput);

  // BMP: a 2x2 24-bit image, read by FFmpeg as one video frame.
  std::vector<uint8_t> bmp = {'B', 'M'};
  PutLittleEndian(&bmp, 54 + 16, 4);
  PutLittleEndian(&bmp, 0, 4);
  PutLittleEndian(&bmp, 54, 4);
  PutLittleEndian(&bmp, 40, 4);
  PutLittleEndian(&bmp, 2, 4);
  PutLittleEndian(&bmp, 2, 4);
  PutLittleEndian(&bmp, 1, 2);
  PutLittleEndian(&bmp, 24, 2);
  PutLittleEndian(&bmp, 0, 4);
  PutLittleEndian(&bmp, 16, 4);
  PutLittleEndian(&bmp, 2835, 4);
  PutLittleEndian(&bmp, 2835, 4);
  PutLittleEndian(&bmp, 0, 4);
  PutLittleEndian(&bmp, 0, 4);
  bmp.resize(bmp.size() + 16, 0x7f);
  EXPECT_EQ(
      ExpectError([&] { DecodeAudioBytes(bmp, "image.bmp"); }, "image.bmp"),
      ErrorCode::kUnsupportedInput);
}

// Playlists and concat lists would make FFmpeg open other files or URLs; the
// decoder refuses every nested open, so they only ever fail.
TEST(AudioErrorsTest, PlaylistsCannotReachOtherFiles) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const std::string target = fs::absolute(KitAudio("sample.wav")).string();
  const std::string hls =
      "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:30\n"
      "#EXTINF:30.0,\nfile:" +
      target + "\n#EXTINF:30.0,\n" + target + "\n#EXT-X-ENDLIST\n";
  const std::string concat = "ffconcat version 1.0\nfile '" + target + "'\n";
  for (const auto& [name, text] :
       {std::pair{std::string("list.m3u8"), hls},
        std::pair{std::string("list.ffconcat"), concat}}) {
    ExpectError(
        [&] {
          DecodeAudioBytes(
              {reinterpret_cast<const uint8_t*>(text.data()), text.size()},
              name);
        },
        name);
  }
}

TEST(AudioErrorsTest, WavHeaderClaimingHugeDataDecodesWhatIsThere) {
  // 4 GiB promised, 1000 bytes present: 500 samples, no giant allocation.
  const std::vector<uint8_t> wav = WavWithHeader(1, 16000, 0xfffffff0u, 1000);
  const DecodedAudio decoded = DecodeAudioBytes(wav, "huge.wav");
  EXPECT_EQ(decoded.mono.samples.size(), 500u);
}

TEST(AudioErrorsTest, ImplausibleWavParametersAreRefused) {
  // 0 and 1 Hz sample rates, and 65535 channels.
  ExpectError(
      [&] { DecodeAudioBytes(WavWithHeader(1, 0, 2000, 2000), "rate0.wav"); },
      "rate0.wav");
  ExpectError(
      [&] {
        LoadAudio16kFromBytes(WavWithHeader(1, 1, 2000, 2000), "rate1.wav");
      },
      "rate1.wav");
  ExpectError(
      [&] {
        DecodeAudioBytes(WavWithHeader(65535, 16000, 2000, 2000), "wide.wav");
      },
      "wide.wav");
  // Float WAV holding NaN and infinity.
  std::vector<uint8_t> nan_wav = WavWithHeader(1, 16000, 16, 0, 3, 32);
  for (float v : {0.5f, std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::infinity(), 0.0f}) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    PutLittleEndian(&nan_wav, u, 4);
  }
  EXPECT_EQ(
      ExpectError([&] { DecodeAudioBytes(nan_wav, "nan.wav"); }, "nan.wav"),
      ErrorCode::kCorruptInput);
}

TEST(AudioErrorsTest, EveryPrefixOfRealFilesDecodesOrFailsCleanly) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  for (const char* file :
       {"sample.wav", "sample.mp3", "sample.ogg", "sample_48k_24bit.flac",
        "sample.m4a", "sample.webm"}) {
    SCOPED_TRACE(file);
    const std::vector<uint8_t> whole = ReadFileBytes(KitAudio(file));
    const int64_t full = DecodeOrError(whole, file);
    ASSERT_GT(full, 0);
    int decoded = 0;
    for (int step = 0; step < 20; ++step) {
      // Short prefixes (inside headers) as well as long ones.
      const size_t size =
          step < 8 ? size_t{1} << (2 * step) : whole.size() * (step - 7) / 13;
      if (size >= whole.size()) continue;
      const std::vector<uint8_t> prefix(whole.begin(), whole.begin() + size);
      const int64_t samples = DecodeOrError(prefix, file);
      if (samples > 0) {
        ++decoded;
        EXPECT_LE(samples, full + 4096) << "prefix of " << size << " bytes";
      }
    }
    // Streamable formats give back the part that is present.
    if (std::string(file) != "sample.m4a") {
      EXPECT_GE(decoded, 5);
    }
  }
}

TEST(AudioErrorsTest, CorruptedBytesInsideFilesDecodeOrFailCleanly) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  std::mt19937 rng(5);
  for (const char* file : {"sample.mp3", "sample.ogg", "sample_48k_24bit.flac",
                           "sample.m4a", "sample.webm", "sample.wav"}) {
    SCOPED_TRACE(file);
    const std::vector<uint8_t> whole = ReadFileBytes(KitAudio(file));
    const int64_t full = DecodeOrError(whole, file);
    for (int trial = 0; trial < 6; ++trial) {
      std::vector<uint8_t> bytes = whole;
      if (trial < 3) {
        // A run of inverted bytes in the middle.
        const size_t at = bytes.size() * (trial + 1) / 4;
        for (size_t i = at; i < std::min(bytes.size(), at + 64); ++i) {
          bytes[i] ^= 0xff;
        }
      } else {
        // Scattered random bytes, headers included.
        for (size_t i = 0; i < bytes.size() / 500; ++i) {
          bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng());
        }
      }
      const int64_t samples = DecodeOrError(bytes, file);
      // Damage never makes much more audio than there was.
      EXPECT_LE(samples, full * 2 + 100000) << "trial " << trial;
    }
  }
}

TEST(AudioErrorsTest, DurationLimitIsAResourceLimit) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  for (const char* file : {"sample.wav", "sample.mp3", "sample.webm"}) {
    const std::string path = KitAudio(file).string();
    AudioLimits limits;
    limits.max_duration_s = 10.0;
    EXPECT_EQ(ExpectError([&] { LoadAudio16k(path, limits); }, path),
              ErrorCode::kResourceLimit);
    limits.max_duration_s = 30.5;
    EXPECT_EQ(LoadAudio16k(path, limits).samples.size(), 480000u) << file;
  }
  // Refused while decoding, before the rest is read: a header promising an
  // hour is stopped after the limit even though the data is all there.
  const std::vector<uint8_t> hour =
      WavWithHeader(1, 8000, 8000 * 2 * 3600, 8000 * 2 * 120);
  AudioLimits limits;
  limits.max_duration_s = 60.0;
  EXPECT_EQ(ExpectError([&] { DecodeAudioBytes(hour, "hour.wav", limits); },
                        "hour.wav"),
            ErrorCode::kResourceLimit);
}

TEST(AudioErrorsTest, ChannelLimitIsAResourceLimit) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const std::string path = KitAudio("stereo_44k.wav").string();
  AudioLimits limits;
  limits.max_channels = 1;
  EXPECT_EQ(ExpectError([&] { DecodeAudioFile(path, limits); }, path),
            ErrorCode::kResourceLimit);
  limits.max_channels = 2;
  EXPECT_EQ(DecodeAudioFile(path, limits).info.channels, 2);
}

}  // namespace
}  // namespace voxprint
