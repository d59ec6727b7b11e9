// `voxprint embed --files-from LIST` and `--shard K/N`: the inputs of an
// array job (Slurm, Kubernetes) taken from a list, each job its slice.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli-runner.h"
#include "support/reference-kit.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using testing::CloseInRelativeL2;
using testing::MakeScratchDirectory;
using testing::Quote;
using testing::ReferenceDir;
using testing::RemoveScratchDirectory;
using testing::RunCommand;

class FilesFromTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VOXPRINT_REQUIRE_REFERENCE_KIT();
    scratch_ = MakeScratchDirectory("voxprint-files-from-test");
    const fs::path audio = ReferenceDir() / "audio";
    for (const char* name : {"short_1s.wav", "silence_2s.wav", "short_1s.wav",
                             "short_1s.wav", "silence_2s.wav"})
      files_.push_back((audio / name).string());
    // CRLF line ends and blank lines are tolerated.
    std::ofstream list(scratch_ / "list.txt");
    for (size_t i = 0; i < files_.size(); ++i)
      list << files_[i] << (i == 1 ? "\r\n\n" : "\n");
  }
  void TearDown() override { RemoveScratchDirectory(scratch_); }

  CliRun Embed(std::vector<std::string> args,
               const std::string& stdin_file = "") {
    args.insert(args.begin(),
                {"embed", "-q", "--model",
                 (ReferenceDir() / "models" / "pytorch_model.bin").string()});
    const std::string redirect =
        stdin_file.empty() ? "" : " <" + Quote(stdin_file);
    return RunCommand(
        "VOXPRINT_OFFLINE=1" + redirect + " " + Quote(VOXPRINT_CLI_PATH), args,
        scratch_);
  }
  static nlohmann::json Results(const CliRun& run) {
    return nlohmann::json::parse(run.out)["results"];
  }

  fs::path scratch_;
  std::vector<std::string> files_;
};

TEST_F(FilesFromTest, ListAndStdinGiveTheInputsInOrder) {
  const CliRun from_file =
      Embed({"--files-from", (scratch_ / "list.txt").string()});
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  const CliRun from_stdin =
      Embed({"--files-from", "-"}, (scratch_ / "list.txt").string());
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.err;
  const nlohmann::json results = Results(from_file);
  ASSERT_EQ(results.size(), files_.size());
  for (size_t i = 0; i < files_.size(); ++i)
    EXPECT_EQ(results[i]["path"], files_[i]);
  EXPECT_EQ(results, Results(from_stdin));
}

TEST_F(FilesFromTest, ShardsCoverTheListOnceWithTheSameEmbeddings) {
  const nlohmann::json all =
      Results(Embed({"--files-from", (scratch_ / "list.txt").string()}));
  ASSERT_EQ(all.size(), files_.size());
  std::vector<std::string> seen;
  size_t largest = 0;
  for (int k = 1; k <= 3; ++k) {
    const CliRun run = Embed({"--files-from", (scratch_ / "list.txt").string(),
                              "--shard", std::to_string(k) + "/3"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const nlohmann::json shard = Results(run);
    largest = std::max(largest, shard.size());
    for (const auto& result : shard) {
      const size_t index = seen.size();
      seen.push_back(result["path"]);
      // Batched with other neighbours: the same numbers up to rounding
      // (other batch shapes take other convolution algorithms).
      EXPECT_TRUE(CloseInRelativeL2(
          result["embedding"].get<std::vector<float>>(),
          all[index]["embedding"].get<std::vector<float>>(), 1e-4));
    }
  }
  EXPECT_EQ(seen, files_);
  EXPECT_EQ(largest, 2u);
  // More shards than inputs: some are empty, which is not an error.
  const CliRun empty = Embed({files_[0], "--shard", "1/2"});
  ASSERT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_TRUE(Results(empty).empty());
}

TEST_F(FilesFromTest, BadShardsAndListsAreErrors) {
  for (const char* shard :
       {"0/3", "4/3", "1/0", "a/b", "1/3x", "2", "1/2000000", "-1/3"}) {
    const CliRun run = Embed({files_[0], "--shard", shard});
    EXPECT_EQ(run.exit_code, 2) << shard;
    EXPECT_NE(run.err.find("--shard"), std::string::npos) << run.err;
  }
  const CliRun missing =
      Embed({"--files-from", (scratch_ / "missing.txt").string()});
  EXPECT_EQ(missing.exit_code, 7);
  EXPECT_NE(missing.err.find("missing.txt: cannot open the --files-from list"),
            std::string::npos)
      << missing.err;
  const CliRun nothing = Embed({});
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_NE(nothing.err.find("no input"), std::string::npos) << nothing.err;
}

}  // namespace
}  // namespace voxprint
