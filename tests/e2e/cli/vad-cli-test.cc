// `voxprint vad` run as a process: formats, options, exit codes, messages.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli-runner.h"
#include "support/reference-kit.h"
#include "support/vad-model.h"
#include "voxprint/audio.h"
#include "voxprint/vad.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using testing::MakeScratchDirectory;
using testing::Quote;
using testing::ReadText;
using testing::ReferenceDir;
using testing::RemoveScratchDirectory;
using testing::RunCommand;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class VadCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VOXPRINT_REQUIRE_REFERENCE_KIT();
    VOXPRINT_REQUIRE_VAD_MODEL();
    model_ = testing::VadModelPathOrEmpty();
    scratch_ = MakeScratchDirectory("voxprint-vad-cli-test");
  }
  void TearDown() override { RemoveScratchDirectory(scratch_); }

  CliRun Voxprint(const std::vector<std::string>& args,
                  const std::string& env = "") const {
    return RunCommand(env + " " + Quote(VOXPRINT_CLI_PATH) + " vad", args,
                      scratch_);
  }
  static std::string Audio(const std::string& name) {
    return (ReferenceDir() / "audio" / name).string();
  }

  std::string model_;
  fs::path scratch_;
};

TEST_F(VadCliTest, JsonHoldsTheLibrarySegmentsInSamples) {
  const CliRun run = Voxprint({"-q", Audio("sample.wav")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.err, "");
  const auto results = nlohmann::json::parse(run.out)["results"];
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0]["samples"], 480000);
  EXPECT_EQ(results[0]["sample_rate_hz"], 16000);

  const std::vector<SpeechSegment> expected =
      VoiceActivityDetector(model_).SpeechSegments(
          LoadAudio16k(Audio("sample.wav")).samples);
  const auto& segments = results[0]["segments"];
  ASSERT_EQ(segments.size(), expected.size());
  ASSERT_FALSE(expected.empty());
  double speech_s = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(segments[i]["start_sample"], expected[i].start_sample);
    EXPECT_EQ(segments[i]["end_sample"], expected[i].end_sample);
    EXPECT_DOUBLE_EQ(segments[i]["start_s"].get<double>(),
                     expected[i].StartSeconds());
    speech_s += expected[i].EndSeconds() - expected[i].StartSeconds();
  }
  EXPECT_NEAR(results[0]["speech_s"].get<double>(), speech_s, 1e-9);
}

// The file is read block by block, resampled on the way (the 48 kHz FLAC):
// the segments are those of the whole decoded signal, for any thread count.
TEST_F(VadCliTest, StreamedFilesGiveTheSegmentsOfTheWholeSignal) {
  const std::string flac = Audio("sample_48k_24bit.flac");
  const std::vector<SpeechSegment> expected =
      VoiceActivityDetector(model_).SpeechSegments(LoadAudio16k(flac).samples);
  ASSERT_FALSE(expected.empty());
  for (const char* threads : {"1", "2"}) {
    const CliRun run = Voxprint({"-q", "--threads", threads, flac});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const auto segments =
        nlohmann::json::parse(run.out)["results"][0]["segments"];
    ASSERT_EQ(segments.size(), expected.size()) << threads;
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(segments[i]["start_sample"], expected[i].start_sample);
      EXPECT_EQ(segments[i]["end_sample"], expected[i].end_sample);
    }
  }
}

TEST_F(VadCliTest, CsvLabAndRttmCarryTheSameBoundaries) {
  const auto json = nlohmann::json::parse(
      Voxprint({"-q", Audio("sample.wav")}).out)["results"][0]["segments"];
  ASSERT_FALSE(json.empty());

  const CliRun csv = Voxprint({"-q", "--format", "csv", Audio("sample.wav")});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  const auto csv_lines = Lines(csv.out);
  ASSERT_EQ(csv_lines.size(), json.size() + 1);
  EXPECT_EQ(csv_lines[0], "path,start_sample,end_sample,start_s,end_s");
  const int64_t start = json[0]["start_sample"], end = json[0]["end_sample"];
  EXPECT_EQ(
      csv_lines[1].rfind(Audio("sample.wav") + "," + std::to_string(start) +
                             "," + std::to_string(end) + ",",
                         0),
      0u)
      << csv_lines[1];

  const fs::path lab_file = scratch_ / "sample.lab";
  const CliRun lab = Voxprint(
      {"-q", "--format", "lab", "-o", lab_file.string(), Audio("sample.wav")});
  ASSERT_EQ(lab.exit_code, 0) << lab.err;
  const auto lab_lines = Lines(ReadText(lab_file));
  ASSERT_EQ(lab_lines.size(), json.size());
  double lab_start = 0, lab_end = 0;
  char label[16] = {};
  ASSERT_EQ(std::sscanf(lab_lines[0].c_str(), "%lf %lf %15s", &lab_start,
                        &lab_end, label),
            3);
  // Seven decimals hold a 16 kHz sample index exactly.
  EXPECT_EQ(std::llround(lab_start * 16000), start);
  EXPECT_EQ(std::llround(lab_end * 16000), end);
  EXPECT_STREQ(label, "speech");

  const CliRun rttm = Voxprint({"-q", "--format", "rttm", Audio("sample.wav")});
  ASSERT_EQ(rttm.exit_code, 0) << rttm.err;
  const auto rttm_lines = Lines(rttm.out);
  ASSERT_EQ(rttm_lines.size(), json.size());
  EXPECT_EQ(rttm_lines[0].rfind("SPEAKER sample 1 ", 0), 0u) << rttm_lines[0];
  EXPECT_NE(rttm_lines[0].find(" speech "), std::string::npos);
}

TEST_F(VadCliTest, OptionsChangeTheSegments) {
  const auto unpadded = nlohmann::json::parse(
      Voxprint({"-q", "--speech-pad-ms", "0", Audio("dev00.wav")})
          .out)["results"][0];
  ASSERT_FALSE(unpadded["segments"].empty());
  // Without padding, boundaries fall on 512-sample chunks (or the end).
  for (const auto& segment : unpadded["segments"]) {
    const int64_t start = segment["start_sample"], end = segment["end_sample"];
    EXPECT_EQ(start % kVadChunkSamples, 0);
    EXPECT_TRUE(end % kVadChunkSamples == 0 || end == unpadded["samples"]);
  }
  const auto strict = nlohmann::json::parse(
      Voxprint({"-q", "--threshold", "0.95", "--neg-threshold", "0.9",
                "--min-speech-ms", "500", Audio("dev00.wav")})
          .out)["results"][0];
  const auto relaxed = nlohmann::json::parse(
      Voxprint({"-q", Audio("dev00.wav")}).out)["results"][0];
  EXPECT_LT(strict["speech_s"].get<double>(),
            relaxed["speech_s"].get<double>());
}

TEST_F(VadCliTest, ABadInputIsReportedInPlaceAndSetsTheExitCode) {
  const CliRun run = Voxprint(
      {"-q", Audio("sample.wav"), Audio("not_audio.wav"), Audio("dev00.wav")});
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_NE(run.err.find("not_audio.wav"), std::string::npos) << run.err;
  const auto results = nlohmann::json::parse(run.out)["results"];
  ASSERT_EQ(results.size(), 3u);
  EXPECT_FALSE(results[0]["segments"].empty());
  EXPECT_EQ(results[1]["error"], "unsupported_input");
  EXPECT_FALSE(results[2]["segments"].empty());
}

TEST_F(VadCliTest, ModelProblemsExitWith4AndNameTheFile) {
  const std::string speaker_model =
      (fs::path(VOXPRINT_SOURCE_DIR) / "tests/data/stub-basic.onnx").string();
  const CliRun wrong =
      Voxprint({"--vad-model", speaker_model, Audio("sample.wav")});
  EXPECT_EQ(wrong.exit_code, 4);
  EXPECT_NE(wrong.err.find(speaker_model), std::string::npos) << wrong.err;
  EXPECT_NE(wrong.err.find("not Silero VAD v5"), std::string::npos)
      << wrong.err;
  EXPECT_EQ(wrong.out, "");

  const std::string missing = (scratch_ / "nowhere.onnx").string();
  const CliRun absent =
      Voxprint({Audio("sample.wav")}, "VOXPRINT_VAD_MODEL=" + Quote(missing));
  EXPECT_EQ(absent.exit_code, 4);
  EXPECT_NE(absent.err.find(missing), std::string::npos) << absent.err;
}

TEST_F(VadCliTest, BadUsageExitsWith2) {
  EXPECT_EQ(Voxprint({"--threshold", "1.5", Audio("sample.wav")}).exit_code, 2);
  EXPECT_EQ(Voxprint({"--neg-threshold", "0.7", Audio("sample.wav")}).exit_code,
            2);
  EXPECT_EQ(Voxprint({"--format", "xml", Audio("sample.wav")}).exit_code, 2);
  EXPECT_EQ(Voxprint({"--threads", "-1", Audio("sample.wav")}).exit_code, 2);
  EXPECT_EQ(Voxprint({"--threads", "5000", Audio("sample.wav")}).exit_code, 2);
  EXPECT_EQ(Voxprint({}).exit_code, 2);
  const CliRun lab =
      Voxprint({"--format", "lab", Audio("sample.wav"), Audio("dev00.wav")});
  EXPECT_EQ(lab.exit_code, 2);
  EXPECT_NE(lab.err.find("--output"), std::string::npos) << lab.err;
}

TEST_F(VadCliTest, LabForSeveralInputsGoesToOneFilePerInput) {
  const fs::path dir = scratch_ / "labs";
  const CliRun run =
      Voxprint({"-q", "--format", "lab", "-o", dir.string(),
                Audio("sample.wav"), Audio("sample.mp3"), Audio("dev00.wav")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_FALSE(ReadText(dir / "sample.lab").empty());
  EXPECT_FALSE(ReadText(dir / "sample-2.lab").empty());
  EXPECT_FALSE(ReadText(dir / "dev00.lab").empty());
}

}  // namespace
}  // namespace voxprint
