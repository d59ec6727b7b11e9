// The Silero VAD v5 network run by voxprint against ONNX Runtime running the
// same file (tests/data/silero-vad-*.json, made by
// tests/support/silero_vad_reference.mjs), and the checks on the model file.
#include "support/vad-model.h"

#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <vector>

#include "support/reference-kit.h"
#include "voxprint/audio.h"
#include "voxprint/error.h"
#include "voxprint/vad.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;

std::string ModelPath() { return testing::VadModelPathOrEmpty(); }

struct Reference {
  std::vector<float> probabilities;
  int64_t samples = 0;
};

Reference LoadReference(const std::string& name) {
  std::ifstream in(fs::path(VOXPRINT_SOURCE_DIR) / "tests" / "data" / name);
  const nlohmann::json json = nlohmann::json::parse(in);
  Reference reference;
  reference.samples = json.at("samples").get<int64_t>();
  reference.probabilities = json.at("probabilities").get<std::vector<float>>();
  return reference;
}

// CPU time, not wall time: the machines running tests are often busy.
double ThreadCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + now.tv_nsec * 1e-9;
}

class VadParityTest : public ::testing::TestWithParam<const char*> {};

TEST_P(VadParityTest, ProbabilitiesMatchOnnxRuntimeWithin1e4) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  VOXPRINT_REQUIRE_VAD_MODEL();
  const std::string audio = GetParam();
  const Reference reference = LoadReference("silero-vad-" + audio + ".json");
  const Audio16k decoded =
      LoadAudio16k((testing::ReferenceDir() / "audio" / (audio + ".wav")));
  ASSERT_EQ(static_cast<int64_t>(decoded.samples.size()), reference.samples);

  const VoiceActivityDetector detector(ModelPath());
  const double begin = ThreadCpuSeconds();
  const std::vector<float> probabilities =
      detector.Probabilities(decoded.samples);
  const double seconds = ThreadCpuSeconds() - begin;
  ASSERT_EQ(probabilities.size(), reference.probabilities.size());
  EXPECT_TRUE(
      testing::CloseInMaxAbs(probabilities, reference.probabilities, 1e-4));
  // The audio holds speech and silence: the check is not vacuous.
  const auto [low, high] = std::minmax_element(reference.probabilities.begin(),
                                               reference.probabilities.end());
  EXPECT_LT(*low, 0.1f);
  EXPECT_GT(*high, 0.9f);
  double worst = 0;
  for (size_t i = 0; i < probabilities.size(); ++i)
    worst = std::max(
        worst, static_cast<double>(
                   std::abs(probabilities[i] - reference.probabilities[i])));
  RecordProperty("max_abs_diff", std::to_string(worst));
  RecordProperty("cpu_seconds", std::to_string(seconds));
}

INSTANTIATE_TEST_SUITE_P(Kit, VadParityTest,
                         ::testing::Values("sample", "dev00"));

TEST(VadModelTest, ConcurrentCallsGiveTheSameProbabilities) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  VOXPRINT_REQUIRE_VAD_MODEL();
  const Audio16k decoded =
      LoadAudio16k(testing::ReferenceDir() / "audio" / "sample.wav");
  const std::span<const float> ten_seconds(decoded.samples.data(), 160000);
  const VoiceActivityDetector detector(ModelPath());
  const std::vector<float> alone = detector.Probabilities(ten_seconds);
  std::vector<std::future<std::vector<float>>> runs;
  for (int i = 0; i < 4; ++i)
    runs.push_back(std::async(std::launch::async, [&] {
      return detector.Probabilities(ten_seconds);
    }));
  for (auto& run : runs) EXPECT_EQ(run.get(), alone);
}

TEST(VadModelTest, SegmentsOfSampleCoverItsSpeech) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  VOXPRINT_REQUIRE_VAD_MODEL();
  const Audio16k decoded =
      LoadAudio16k(testing::ReferenceDir() / "audio" / "sample.wav");
  const VoiceActivityDetector detector(ModelPath());
  const std::vector<SpeechSegment> segments =
      detector.SpeechSegments(decoded.samples);
  ASSERT_FALSE(segments.empty());
  // sample.rttm: nobody speaks before 6.69 s; speech from 27.85 s to 30 s.
  EXPECT_GT(segments.front().StartSeconds(), 5.0);
  EXPECT_GT(segments.back().EndSeconds(), 29.0);
  for (size_t i = 0; i < segments.size(); ++i) {
    EXPECT_LT(segments[i].start_sample, segments[i].end_sample);
    if (i > 0) {
      EXPECT_LE(segments[i - 1].end_sample, segments[i].start_sample);
    }
  }
}

// Read block by block, a file gives what the whole decoded signal gives:
// at 16 kHz (sample.wav), resampled from 48 kHz (the FLAC) and from a
// compressed stream with priming (the MP3).
class VadFileTest : public ::testing::TestWithParam<const char*> {};

TEST_P(VadFileTest, SpeechOfFileIsTheSpeechOfTheWholeSignal) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  VOXPRINT_REQUIRE_VAD_MODEL();
  const std::string path =
      (testing::ReferenceDir() / "audio" / GetParam()).string();
  const VoiceActivityDetector detector(ModelPath(), 2);
  // Short segments and silences, so that many boundaries are compared.
  VadOptions options;
  options.min_speech_ms = 100;
  options.min_silence_ms = 50;
  const Audio16k whole = LoadAudio16k(path);
  const FileSpeech streamed = detector.SpeechOfFile(path, options);
  EXPECT_EQ(streamed.samples_16k, static_cast<int64_t>(whole.samples.size()));
  EXPECT_EQ(streamed.audio.sample_rate_hz, whole.info.sample_rate_hz);
  EXPECT_EQ(streamed.audio.frames, whole.info.frames);
  const std::vector<SpeechSegment> expected =
      detector.SpeechSegments(whole.samples, options);
  ASSERT_GT(expected.size(), 2u);
  EXPECT_EQ(streamed.segments, expected);
}

INSTANTIATE_TEST_SUITE_P(Kit, VadFileTest,
                         ::testing::Values("sample.wav",
                                           "sample_48k_24bit.flac",
                                           "sample.mp3"));

TEST(VadModelTest, SpeechOfFileNamesTheFileItCannotRead) {
  VOXPRINT_REQUIRE_VAD_MODEL();
  const VoiceActivityDetector detector(ModelPath());
  const std::string path =
      (fs::path(::testing::TempDir()) / "no-such-recording.wav").string();
  try {
    detector.SpeechOfFile(path);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kIoError);
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos)
        << error.what();
  }
  // Options are checked before the input is read.
  VadOptions bad;
  bad.threshold = 2.0;
  try {
    detector.SpeechOfFile(path, bad);
    FAIL() << "expected kInvalidArgument";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument) << error.what();
  }
}

TEST(VadModelTest, SpeechOfFileStopsWhenCancelled) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  VOXPRINT_REQUIRE_VAD_MODEL();
  const VoiceActivityDetector detector(ModelPath());
  const CancelToken cancel = CancelToken::Create();
  cancel.Cancel();
  try {
    detector.SpeechOfFile(
        (testing::ReferenceDir() / "audio" / "dev00.wav").string(), {}, {},
        cancel);
    FAIL() << "expected kCancelled";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kCancelled);
  }
}

TEST(VadModelTest, EmptyAudioHasNoChunks) {
  VOXPRINT_REQUIRE_VAD_MODEL();
  const VoiceActivityDetector detector(ModelPath());
  EXPECT_TRUE(detector.Probabilities({}).empty());
  EXPECT_TRUE(detector.SpeechSegments({}).empty());
  EXPECT_EQ(detector.Probabilities(std::vector<float>(513, 0.0f)).size(), 2u);
}

TEST(VadModelTest, CancelledTokenStopsTheRun) {
  VOXPRINT_REQUIRE_VAD_MODEL();
  const VoiceActivityDetector detector(ModelPath());
  const CancelToken cancel = CancelToken::Create();
  cancel.Cancel();
  try {
    detector.Probabilities(std::vector<float>(16000, 0.0f), cancel);
    FAIL() << "expected kCancelled";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kCancelled);
  }
}

ErrorCode LoadErrorCode(const std::string& path, std::string* message) {
  try {
    VoiceActivityDetector detector(path);
  } catch (const Error& error) {
    *message = error.what();
    return error.code();
  }
  ADD_FAILURE() << path << " loaded";
  return ErrorCode::kInternal;
}

TEST(VadModelTest, TheSpeakerModelIsNotAVadModel) {
  // A real ONNX file, but WeSpeaker's, not Silero's.
  const std::string path =
      (fs::path(VOXPRINT_SOURCE_DIR) / "tests/data/stub-basic.onnx").string();
  std::string message;
  EXPECT_EQ(LoadErrorCode(path, &message), ErrorCode::kModelError);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("not Silero VAD v5"), std::string::npos) << message;
}

TEST(VadModelTest, NonOnnxAndMissingFilesAreModelErrors) {
  std::string message;
  const std::string audio =
      (fs::path(VOXPRINT_SOURCE_DIR) / "tests/data/stub-basic.pt").string();
  EXPECT_EQ(LoadErrorCode(audio, &message), ErrorCode::kModelError);
  EXPECT_NE(message.find(audio), std::string::npos) << message;

  const std::string missing = "/nonexistent/silero_vad_v5.onnx";
  EXPECT_EQ(LoadErrorCode(missing, &message), ErrorCode::kModelError);
  EXPECT_NE(message.find("not found"), std::string::npos) << message;

  const std::vector<uint8_t> empty;
  try {
    VoiceActivityDetector detector(empty, "empty.onnx");
    FAIL() << "empty bytes loaded";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kModelError);
  }
}

TEST(VadModelTest, AMissingWeightIsRefused) {
  VOXPRINT_REQUIRE_VAD_MODEL();
  std::vector<uint8_t> bytes = testing::ReadFileBytes(ModelPath());
  // Rename the LSTM's input weights: the reader must notice they are gone.
  const std::string name = "decoder.rnn.weight_ih";
  size_t renamed = 0;
  for (size_t i = 0; i + name.size() <= bytes.size(); ++i) {
    if (std::equal(name.begin(), name.end(), bytes.begin() + i)) {
      bytes[i + name.size() - 2] = 'X';
      ++renamed;
    }
  }
  ASSERT_GT(renamed, 0u);
  try {
    VoiceActivityDetector detector(bytes, "renamed.onnx");
    FAIL() << "a model without decoder.rnn.weight_ih loaded";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kModelError);
    EXPECT_NE(std::string(error.what()).find("decoder.rnn.weight_ih"),
              std::string::npos)
        << error.what();
  }
}

TEST(VadModelTest, AWeightOfAnotherShapeIsRefused) {
  VOXPRINT_REQUIRE_VAD_MODEL();
  std::vector<uint8_t> bytes = testing::ReadFileBytes(ModelPath());
  // The head's dims [1, 128, 1] as protobuf varints, just before its name;
  // 128 (0x80 0x01) becomes 127 written in the same two bytes (0xff 0x00),
  // so every enclosing length stays valid.
  const std::vector<uint8_t> dims = {0x08, 0x01, 0x08, 0x80, 0x01,
                                     0x08, 0x01, 0x10, 0x01};
  size_t changed = 0;
  for (size_t i = 0; i + dims.size() <= bytes.size(); ++i) {
    if (std::equal(dims.begin(), dims.end(), bytes.begin() + i)) {
      bytes[i + 3] = 0xff;
      bytes[i + 4] = 0x00;
      ++changed;
    }
  }
  ASSERT_GT(changed, 0u);
  try {
    VoiceActivityDetector detector(bytes, "reshaped.onnx");
    FAIL() << "a head of shape [1, 127, 1] loaded";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kModelError);
    EXPECT_NE(std::string(error.what())
                  .find("'decoder.decoder.2.weight' has shape [1, 127, 1], "
                        "expected [1, 128, 1]"),
              std::string::npos)
        << error.what();
  }
}

TEST(VadModelTest, FindVadModelPrefersTheFlagThenTheVariable) {
  EXPECT_EQ(FindVadModel("/some/where.onnx"), "/some/where.onnx");
  ::setenv("VOXPRINT_VAD_MODEL", "/from/env.onnx", 1);
  EXPECT_EQ(FindVadModel(), "/from/env.onnx");
  EXPECT_EQ(FindVadModel("/flag.onnx"), "/flag.onnx");
  ::unsetenv("VOXPRINT_VAD_MODEL");
}

}  // namespace
}  // namespace voxprint
