// `voxprint diarize` and `voxprint der` run as processes: formats, the
// answers to bad input, exit codes, one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "cli-runner.h"
#include "support/reference-kit.h"
#include "support/vad-model.h"

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

class DiarizeCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VOXPRINT_REQUIRE_REFERENCE_KIT();
    VOXPRINT_REQUIRE_VAD_MODEL();
    scratch_ = MakeScratchDirectory("voxprint-diarize-cli-test");
  }
  void TearDown() override { RemoveScratchDirectory(scratch_); }

  CliRun Voxprint(const std::string& command,
                  const std::vector<std::string>& args) const {
    std::vector<std::string> all = args;
    if (command == "diarize") {
      all.insert(all.begin(),
                 {"--model",
                  (ReferenceDir() / "models" / "pytorch_model.bin").string()});
    }
    return RunCommand(Quote(VOXPRINT_CLI_PATH) + " " + command, all, scratch_);
  }
  static std::string Audio(const std::string& name) {
    return (ReferenceDir() / "audio" / name).string();
  }
  fs::path scratch_;
};

TEST_F(DiarizeCliTest, RttmJsonAndCsvAgree) {
  const fs::path rttm = scratch_ / "out.rttm";
  const CliRun run =
      Voxprint("diarize", {"-q", "--num-speakers", "2", "-o", rttm.string(),
                           Audio("sample.wav"), Audio("silence_2s.wav")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.err, "");
  const std::string text = ReadText(rttm);
  const std::regex line(
      "SPEAKER sample 1 [0-9]+\\.[0-9]{3} [0-9]+\\.[0-9]{3} <NA> <NA> "
      "SPEAKER_0[01] <NA> <NA>");
  size_t lines = 0;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l); ++lines)
    EXPECT_TRUE(std::regex_match(l, line)) << l;
  EXPECT_GT(lines, 0u);

  const CliRun json =
      Voxprint("diarize", {"-q", "--num-speakers", "2", "--format", "json",
                           Audio("sample.wav"), Audio("silence_2s.wav")});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto results = nlohmann::json::parse(json.out)["results"];
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0]["segments"].size(), lines);
  EXPECT_EQ(results[0]["speakers"].size(), 2u);
  // No speech: an empty diarization, not an error.
  EXPECT_EQ(results[1]["segments"].size(), 0u);
  EXPECT_EQ(results[1]["speakers"].size(), 0u);

  const CliRun csv = Voxprint(
      "diarize",
      {"-q", "--num-speakers", "2", "--format", "csv", Audio("sample.wav")});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(csv.out.rfind("path,start_s,end_s,speaker\n", 0), 0u);
  EXPECT_EQ(std::count(csv.out.begin(), csv.out.end(), '\n'),
            static_cast<long>(lines) + 1);

  // The hypothesis scored against itself: DER 0.
  const CliRun der = Voxprint("der", {rttm.string(), rttm.string()});
  ASSERT_EQ(der.exit_code, 0) << der.err;
  EXPECT_EQ(der.out.rfind("DER 0.00 %", 0), 0u) << der.out;
  EXPECT_NE(der.out.find("pyannote.metrics collar=0"), std::string::npos);
}

// --speakers-db names a cluster after the enrolled voiceprint its centroid
// is closest to, above --speaker-threshold; the store must be this model's.
TEST_F(DiarizeCliTest, EnrolledSpeakersNameTheirClusters) {
  const std::string model =
      (ReferenceDir() / "models" / "pytorch_model.bin").string();
  const std::string db = (scratch_ / "speakers.db").string();
  const CliRun enroll = RunCommand(
      Quote(VOXPRINT_CLI_PATH) + " speakers enroll",
      {"--model", model, "--db", db, "alice", Audio("sample.wav")}, scratch_);
  ASSERT_EQ(enroll.exit_code, 0) << enroll.err;

  // Any similarity is above -1: the one cluster takes the name.
  const CliRun named =
      Voxprint("diarize", {"-q", "--num-speakers", "1", "--format", "json",
                           "--speakers-db", db, "--speaker-threshold", "-1",
                           Audio("sample.wav")});
  ASSERT_EQ(named.exit_code, 0) << named.err;
  const auto speakers =
      nlohmann::json::parse(named.out)["results"][0]["speakers"];
  ASSERT_EQ(speakers.size(), 1u);
  EXPECT_EQ(speakers[0]["label"], "alice");
  EXPECT_EQ(speakers[0]["name"], "alice");
  EXPECT_GT(speakers[0]["similarity"].get<double>(), -1.0);

  // No cosine is above 1: the cluster keeps its number.
  const CliRun unnamed =
      Voxprint("diarize", {"-q", "--num-speakers", "1", "--speakers-db", db,
                           "--speaker-threshold", "1", Audio("sample.wav")});
  ASSERT_EQ(unnamed.exit_code, 0) << unnamed.err;
  EXPECT_NE(unnamed.out.find(" SPEAKER_00 "), std::string::npos) << unnamed.out;
  EXPECT_EQ(unnamed.out.find("alice"), std::string::npos) << unnamed.out;

  // A store of another model file is refused, naming both checksums.
  const CliRun other = RunCommand(
      Quote(VOXPRINT_CLI_PATH) + " diarize",
      {"-q", "--model", (ReferenceDir() / "models" / "avg_model.pt").string(),
       "--speakers-db", db, Audio("sample.wav")},
      scratch_);
  EXPECT_EQ(other.exit_code, 4) << other.err;
  EXPECT_NE(other.err.find("voxprint: error: "), std::string::npos)
      << other.err;
}

TEST_F(DiarizeCliTest, BadInputGetsOneLineAndItsExitCode) {
  // A VAD file that is not Silero's: exit 4, naming it.
  const std::string speaker_model =
      (ReferenceDir() / "models" / "voxceleb_resnet34_LM.onnx").string();
  CliRun run =
      Voxprint("diarize", {"--vad-model", speaker_model, Audio("sample.wav")});
  EXPECT_EQ(run.exit_code, 4);
  EXPECT_NE(run.err.find("not Silero VAD v5"), std::string::npos) << run.err;
  // Not audio: exit 3; the other file is still diarized.
  run = Voxprint("diarize",
                 {"-q", Audio("not_audio.wav"), Audio("short_1s.wav")});
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_NE(run.err.find("not_audio.wav"), std::string::npos);
  EXPECT_NE(run.out.find("SPEAKER short_1s 1 "), std::string::npos);
  // Parameters: exit 2 before anything loads.
  run = Voxprint("diarize", {"--min-speakers", "3", "--max-speakers", "2",
                             Audio("sample.wav")});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("min_speakers"), std::string::npos);
  run = Voxprint("diarize", {"--clustering", "kmeans", Audio("sample.wav")});
  EXPECT_EQ(run.exit_code, 2);

  // der: a bad RTTM names the file and line (exit 3); a missing one, 7.
  const fs::path bad = scratch_ / "bad.rttm";
  std::ofstream(bad) << "SPEAKER a 1 0 1 <NA> <NA> x\nSPEAKER a 1 zero 1\n";
  run = Voxprint("der", {bad.string(), bad.string()});
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_NE(run.err.find("bad.rttm: line 2"), std::string::npos) << run.err;
  run = Voxprint("der", {(scratch_ / "missing.rttm").string(), bad.string()});
  EXPECT_EQ(run.exit_code, 7);
  // md-eval's collar is said as such.
  const fs::path good = scratch_ / "good.rttm";
  std::ofstream(good) << "SPEAKER a 1 0 10 <NA> <NA> x <NA> <NA>\n";
  run = Voxprint("der", {"--collar", "0.25", "--collar-convention", "md-eval",
                         "--format", "json", good.string(), good.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto der = nlohmann::json::parse(run.out);
  EXPECT_EQ(der["der"], 0.0);
  EXPECT_DOUBLE_EQ(der["total_s"].get<double>(), 9.5);
  EXPECT_NE(der["scoring"].get<std::string>().find("md-eval -c 0.25"),
            std::string::npos);
}

}  // namespace
}  // namespace voxprint
