// `voxprint speakers`, `identify`, `verify` and `eval` run as a user would:
// the real binary, the kit's model and audio, a store in a scratch folder.
// The kit's weights are random, so who matches whom means nothing here; the
// plumbing (store, JSON, exit codes, model checks) is what is tested.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli-runner.h"
#include "support/reference-kit.h"
#include "support/wav-builder.h"
#include "voxprint/audio.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CliRun;
using testing::Quote;

class SpeakersCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VOXPRINT_REQUIRE_REFERENCE_KIT();
    scratch_ = testing::MakeScratchDirectory("voxprint-speakers-cli-test");
    db_ = (scratch_ / "speakers.db").string();
    model_ =
        (testing::ReferenceDir() / "models" / "pytorch_model.bin").string();
    // 3 s cuts of the kit's recording: short files keep the test fast.
    const Audio16k audio = LoadAudio16k(
        (testing::ReferenceDir() / "audio" / "sample.wav").string());
    for (int i = 0; i < 4; ++i) {
      const size_t count = 3 * 16000;
      std::vector<uint8_t> bytes =
          testing::WavHeader(3, 1, 16000, 32, count * sizeof(float));
      const auto* data = reinterpret_cast<const uint8_t*>(audio.samples.data() +
                                                          i * 6 * 16000);
      bytes.insert(bytes.end(), data, data + count * sizeof(float));
      clips_.push_back(
          (scratch_ / ("clip" + std::to_string(i) + ".wav")).string());
      std::ofstream(clips_.back(), std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes.data()),
                 static_cast<std::streamsize>(bytes.size()));
    }
  }
  void TearDown() override { testing::RemoveScratchDirectory(scratch_); }

  // `voxprint ARGS... --db DB` (with --model where the command takes one).
  CliRun Run(std::vector<std::string> args, bool with_model = true,
             const std::string& model = "") const {
    args.push_back("--db");
    args.push_back(db_);
    if (with_model) {
      args.push_back("--model");
      args.push_back(model.empty() ? model_ : model);
    }
    return testing::RunCommand(Quote(VOXPRINT_CLI_PATH), args, scratch_);
  }
  static json Json(const CliRun& run) {
    const json parsed = json::parse(run.out, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << run.out << run.err;
    return parsed;
  }

  fs::path scratch_;
  std::string db_, model_;
  std::vector<std::string> clips_;
};

TEST_F(SpeakersCliTest, EnrollListIdentifyVerifyRenameRemove) {
  CliRun run = Run({"speakers", "enroll", "alice", clips_[0], clips_[1],
                    "--metadata", R"({"desk": 4})"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  json report = Json(run);
  EXPECT_EQ(report["speaker"]["enrollments"], 2);
  EXPECT_EQ(report["speaker"]["metadata"]["desk"], 4);
  EXPECT_EQ(report["added"].size(), 2u);
  EXPECT_EQ(report["recommended_speech_s"], 20.0);
  const double speech = report["speech_s"];
  EXPECT_GT(speech, 0.0);
  EXPECT_LE(speech, 6.0 + 1e-9);
  EXPECT_NEAR(report["progress"].get<double>(), speech / 20.0, 1e-9);
  EXPECT_EQ(report["warnings"][0], "not_enough_speech");
  EXPECT_EQ(report["added"][0]["audio_sha256"].get<std::string>().size(), 64u);

  ASSERT_EQ(Run({"speakers", "enroll", "bob", clips_[2]}).exit_code, 0);
  // A name that exists: exit 2, nothing changed; --append adds to it.
  run = Run({"speakers", "enroll", "bob", clips_[3]});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("exists already"), std::string::npos) << run.err;
  ASSERT_EQ(Run({"speakers", "enroll", "bob", clips_[3], "--append"}).exit_code,
            0);

  run = Run({"speakers", "list"}, false);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  json list = Json(run);
  ASSERT_EQ(list["speakers"].size(), 2u);
  EXPECT_EQ(list["speakers"][1]["name"], "bob");
  EXPECT_EQ(list["speakers"][1]["enrollments"], 2);
  run = Run({"speakers", "list", "--format", "csv"}, false);
  EXPECT_EQ(run.out.substr(0, run.out.find('\n')),
            "name,enrollments,duration_s,speech_s,created_at,updated_at");

  // An enrolled clip identifies its speaker above any threshold below 1
  // (alice's voiceprint is the mean of two clips, so not exactly 1).
  run = Run({"identify", clips_[2], "--threshold", "0.99", "--top-k", "1"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  json id = Json(run);
  EXPECT_EQ(id["results"][0]["candidates"].size(), 1u);
  EXPECT_EQ(id["score_scale"],
            "raw cosine similarity in [-1, 1] (not (cos+1)/2)");
  // bob's voiceprint is the mean of clip2 and clip3: clip2 alone is close
  // but below 1.
  const double bob_score = id["results"][0]["candidates"][0]["score"];
  EXPECT_EQ(id["results"][0]["candidates"][0]["name"], "bob");
  EXPECT_EQ(id["results"][0]["unknown"], bob_score < 0.99);

  run = Run({"verify", "bob", clips_[2], "--threshold", "-1"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NEAR(Json(run)["score"].get<double>(), bob_score, 1e-6);
  EXPECT_EQ(Json(run)["accepted"], true);

  run = Run({"verify", "carol", clips_[2]});
  EXPECT_EQ(run.exit_code, 8);
  EXPECT_NE(run.err.find("no speaker named \"carol\""), std::string::npos);
  EXPECT_EQ(Run({"speakers", "remove", "carol"}, false).exit_code, 8);
  EXPECT_EQ(Run({"speakers", "rename", "alice", "bob"}, false).exit_code, 2);
  EXPECT_EQ(Run({"speakers", "enroll", "bad\x01name", clips_[0]}).exit_code, 2);
  EXPECT_EQ(
      Run({"speakers", "enroll", std::string(129, 'x'), clips_[0]}).exit_code,
      2);

  ASSERT_EQ(Run({"speakers", "rename", "alice", "Alicia"}, false).exit_code, 0);
  ASSERT_EQ(Run({"speakers", "remove", "bob"}, false).exit_code, 0);
  list = Json(Run({"speakers", "list"}, false));
  ASSERT_EQ(list["speakers"].size(), 1u);
  EXPECT_EQ(list["speakers"][0]["name"], "Alicia");
}

TEST_F(SpeakersCliTest, AnotherModelExportImportAndCohort) {
  ASSERT_EQ(Run({"speakers", "enroll", "alice", clips_[0]}).exit_code, 0);
  // The same network in another file is another checksum: refused (exit 4),
  // naming both, and the store is still usable with its model.
  const std::string other =
      (testing::ReferenceDir() / "models" / "avg_model.pt").string();
  CliRun run = Run({"identify", clips_[0]}, true, other);
  EXPECT_EQ(run.exit_code, 4);
  EXPECT_NE(run.err.find("SHA-256"), std::string::npos) << run.err;
  EXPECT_EQ(Run({"identify", clips_[0]}).exit_code, 0);

  const std::string exported = (scratch_ / "export.json").string();
  ASSERT_EQ(Run({"speakers", "export", exported}, false).exit_code, 0);
  const std::string original_db = db_;
  db_ = (scratch_ / "copy.db").string();
  run = Run({"speakers", "import", exported});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(Json(run)["imported"], 1);
  EXPECT_EQ(Run({"speakers", "import", exported}).exit_code, 2);
  db_ = (scratch_ / "other-model.db").string();
  EXPECT_EQ(Run({"speakers", "import", exported}, true, other).exit_code, 4);
  db_ = original_db;

  // AS-Norm: a cohort from three other clips; its scores need a threshold.
  const std::string cohort = (scratch_ / "cohort.npy").string();
  run =
      testing::RunCommand(Quote(VOXPRINT_CLI_PATH),
                          {"speakers", "cohort", "build", clips_[1], clips_[2],
                           clips_[3], "-o", cohort, "--model", model_},
                          scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(Json(run)["rows"], 3);
  EXPECT_EQ(Run({"identify", clips_[0], "--cohort", cohort}).exit_code, 2);
  run = Run({"identify", clips_[0], "--cohort", cohort, "--threshold", "1.5"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(Json(run)["score_scale"],
            "AS-Norm: standard deviations above the cohort (no fixed range)");
}

TEST_F(SpeakersCliTest, EvalScoredAndUnscoredTrials) {
  const std::string scored = (scratch_ / "scored.txt").string();
  std::ofstream(scored) << "e1 t1 0.9 target\ne1 t2 0.2 nontarget\n"
                           "e2 t3 0.6 target\ne2 t4 0.7 nontarget\n"
                           "e3 t5 0.1 nontarget\n";
  const std::string det = (scratch_ / "det.csv").string();
  CliRun run = testing::RunCommand(Quote(VOXPRINT_CLI_PATH),
                                   {"eval", scored, "--det", det}, scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  json result = Json(run);
  EXPECT_EQ(result["targets"], 2);
  EXPECT_EQ(result["nontargets"], 3);
  // Sorted: 0.1n 0.2n 0.6t 0.7n 0.9t. The EER crossing lies between 0.2 and
  // 0.6: fnr (0, 0.5), fpr (1/3, 1/3) -> interpolated 1/3.
  EXPECT_NEAR(result["eer"].get<double>(), 1.0 / 3, 1e-12);
  EXPECT_EQ(testing::ReadText(det).substr(0, 37),
            "threshold,false_reject,false_accept\n0");

  // Unscored VoxCeleb trials: eval embeds the files (relative paths).
  const std::string trials = (scratch_ / "trials.txt").string();
  std::ofstream(trials) << "1 clip0.wav clip0.wav\n0 clip0.wav clip1.wav\n"
                           "0 clip2.wav clip3.wav\n1 clip1.wav clip1.wav\n";
  run = testing::RunCommand(Quote(VOXPRINT_CLI_PATH),
                            {"eval", trials, "--model", model_}, scratch_);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  result = Json(run);
  // Same file against itself scores 1: above every other pair.
  EXPECT_DOUBLE_EQ(result["eer"].get<double>(), 0.0);
  EXPECT_EQ(result["score_scale"],
            "raw cosine similarity in [-1, 1] (not (cos+1)/2)");
  std::ofstream(trials) << "2 a b\n";
  run =
      testing::RunCommand(Quote(VOXPRINT_CLI_PATH), {"eval", trials}, scratch_);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("trials.txt:1"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace voxprint
