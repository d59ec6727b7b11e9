// `voxprint` run as a process: outputs, formats, exit codes, messages.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli-runner.h"
#include "support/reference-kit.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using testing::CloseInRelativeL2;
using testing::LoadNpy;
using testing::MakeScratchDirectory;
using testing::Quote;
using testing::ReadText;
using testing::ReferenceDir;
using testing::RemoveScratchDirectory;
using testing::RunCommand;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VOXPRINT_REQUIRE_REFERENCE_KIT();
    scratch_ = MakeScratchDirectory("voxprint-cli-test");
  }
  void TearDown() override { RemoveScratchDirectory(scratch_); }

  // Runs voxprint with `args`; the model cache points into the scratch
  // directory and downloads are off, so nothing leaves the machine.
  CliRun Voxprint(const std::vector<std::string>& args,
                  const std::string& env = "") const {
    return RunCommand(
        "VOXPRINT_OFFLINE=1 VOXPRINT_CACHE_DIR=" + Quote(scratch_ / "cache") +
            " VOXPRINT_MODEL= " + env + " " + Quote(VOXPRINT_CLI_PATH),
        args, scratch_);
  }
  std::string Audio(const std::string& name) const {
    return (ReferenceDir() / "audio" / name).string();
  }
  std::string Model(const std::string& name = "pytorch_model.bin") const {
    return (ReferenceDir() / "models" / name).string();
  }

  fs::path scratch_;
};

TEST_F(CliTest, EmbedPrintsTheReferenceEmbedding) {
  const CliRun run =
      Voxprint({"embed", Audio("sample.wav"), "--model", Model()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto json = nlohmann::json::parse(run.out);
  ASSERT_EQ(json["results"].size(), 1u);
  const auto& result = json["results"][0];
  EXPECT_EQ(result["path"], Audio("sample.wav"));
  EXPECT_EQ(result["sample_rate_hz"], 16000);
  EXPECT_EQ(result["channels"], 1);
  EXPECT_DOUBLE_EQ(result["duration_s"].get<double>(), 30.0);
  const std::vector<float> embedding = result["embedding"];
  EXPECT_TRUE(CloseInRelativeL2(
      embedding,
      LoadNpy(ReferenceDir() / "expected/sample_wav.whole.npy").values, 1e-4));
}

TEST_F(CliTest, SlidingWindowsToNpy) {
  const fs::path out = scratch_ / "windows.npy";
  const CliRun run =
      Voxprint({"embed", Audio("sample.wav"), "--model", Model("avg_model.pt"),
                "--window", "sliding", "--duration", "3", "--step", "1",
                "--format", "npy", "--output", out.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const testing::NpyArray actual = LoadNpy(out);
  const testing::NpyArray expected =
      LoadNpy(ReferenceDir() / "expected/sample_wav.sliding_3.0_1.0.npy");
  EXPECT_EQ(actual.shape, expected.shape);
  EXPECT_TRUE(CloseInRelativeL2(actual.values, expected.values, 1e-4));
}

TEST_F(CliTest, ExcerptWithOnnxModel) {
  const CliRun run = Voxprint({"embed", Audio("sample.wav"), "--model",
                               Model("voxceleb_resnet34_LM.onnx"), "--start",
                               "5", "--end", "12.5"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::vector<float> embedding =
      nlohmann::json::parse(run.out)["results"][0]["embedding"];
  EXPECT_TRUE(CloseInRelativeL2(
      embedding,
      LoadNpy(ReferenceDir() / "expected/sample_wav.crop_5.0_12.5.npy").values,
      1e-4));
}

TEST_F(CliTest, BatchWritesOneNpyPerInputNamedAfterIt) {
  const fs::path dir = scratch_ / "out";
  const CliRun run = Voxprint(
      {"embed", Audio("sample.wav"), Audio("sample.mp3"), Audio("short_1s.wav"),
       "--model", Model(), "--format", "npy", "--output", dir.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // sample.wav and sample.mp3 share a stem: the second gets a suffix.
  EXPECT_TRUE(fs::exists(dir / "sample.npy"));
  EXPECT_TRUE(fs::exists(dir / "sample-2.npy"));
  EXPECT_TRUE(fs::exists(dir / "short_1s.npy"));
  EXPECT_TRUE(CloseInRelativeL2(
      LoadNpy(dir / "sample-2.npy").values,
      LoadNpy(ReferenceDir() / "expected/sample_mp3.whole.npy").values, 1e-3));
  EXPECT_NE(run.err.find("[3/3]"), std::string::npos) << "progress on stderr";
}

// Parallel jobs give the same results, in input order, with a bad input in
// the middle reported in its place.
// Several inputs: outputs in input order, a failed input reported in its
// place. Whole files are batched across inputs (each as embedded alone);
// sliding windows with --jobs run inputs side by side (same windows).
TEST_F(CliTest, ManyInputsKeepOrderAndReportFailuresInPlace) {
  const std::vector<std::string> inputs = {
      Audio("sample.wav"), Audio("short_1s.wav"),
      (scratch_ / "missing.wav").string(), Audio("sample_48k_24bit.flac")};
  std::vector<std::string> args = {"embed", "-q", "--model", Model()};
  args.insert(args.end(), inputs.begin(), inputs.end());
  const CliRun batched = Voxprint(args);
  EXPECT_EQ(batched.exit_code, 7) << batched.err;
  EXPECT_NE(batched.err.find("missing.wav"), std::string::npos);
  const auto results = nlohmann::json::parse(batched.out)["results"];
  ASSERT_EQ(results.size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    SCOPED_TRACE(inputs[i]);
    EXPECT_EQ(results[i]["path"], inputs[i]);
    const CliRun alone =
        Voxprint({"embed", "-q", "--model", Model(), inputs[i]});
    const auto single = nlohmann::json::parse(alone.out)["results"][0];
    if (i == 2) {
      EXPECT_EQ(results[i]["error"], single["error"]);
      EXPECT_EQ(results[i]["error"], "io_error");
      continue;
    }
    // A batch may run Winograd where one short input runs direct
    // convolution (measured 1e-5 apart); a swapped result would be far off.
    const std::vector<float> x = single["embedding"],
                             y = results[i]["embedding"];
    EXPECT_TRUE(CloseInRelativeL2(y, x, 3e-5));
  }

  args.insert(args.end(), {"--window", "sliding"});
  const CliRun serial = Voxprint(args);
  args.insert(args.end(), {"--jobs", "3"});
  const CliRun parallel = Voxprint(args);
  EXPECT_EQ(parallel.exit_code, 7) << parallel.err;
  const auto a = nlohmann::json::parse(serial.out)["results"];
  const auto b = nlohmann::json::parse(parallel.out)["results"];
  ASSERT_EQ(b.size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    SCOPED_TRACE(inputs[i]);
    EXPECT_EQ(b[i]["path"], inputs[i]);
    if (i == 2) {
      EXPECT_EQ(b[i]["error"], a[i]["error"]);
      continue;
    }
    ASSERT_EQ(a[i]["windows"].size(), b[i]["windows"].size());
    for (size_t w = 0; w < a[i]["windows"].size(); ++w) {
      // Each job runs on fewer threads, which changes oneDNN's summation
      // order (measured 3e-6).
      const std::vector<float> x = a[i]["windows"][w]["embedding"];
      const std::vector<float> y = b[i]["windows"][w]["embedding"];
      EXPECT_TRUE(CloseInRelativeL2(y, x, 1e-5)) << "window " << w;
    }
  }
  EXPECT_EQ(Voxprint({"embed", Audio("sample.wav"), "--jobs", "0"}).exit_code,
            2);
}

TEST_F(CliTest, SharedTrunkIsAnOptInForSlidingWindows) {
  const CliRun run = Voxprint({"embed", Audio("sample.wav"), "--model", Model(),
                               "--window", "sliding", "--shared-trunk"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(nlohmann::json::parse(run.out)["results"][0]["windows"].size(),
            28u);
  const CliRun whole = Voxprint(
      {"embed", Audio("sample.wav"), "--model", Model(), "--shared-trunk"});
  EXPECT_EQ(whole.exit_code, 2);
  EXPECT_NE(whole.err.find("sliding"), std::string::npos) << whole.err;
}

// bf16 and mixed precision are opt-ins, less exact than fp32 by their
// documented bounds (mixed: stages 3-4 in bf16, about a third of bf16's
// error); a CPU without native bf16 refuses them with one usage line.
TEST_F(CliTest, PrecisionOptInsStayWithinTheirBounds) {
  const std::vector<float> expected =
      LoadNpy(ReferenceDir() / "expected/sample_wav.whole.npy").values;
  std::vector<double> errors;
  for (const std::string precision : {"bf16", "mixed"}) {
    SCOPED_TRACE(precision);
    const CliRun run =
        Voxprint({"embed", Audio("sample.wav"), "--model", Model(), "--device",
                  "cpu", "--precision", precision});
    if (run.exit_code != 0) {
      EXPECT_EQ(run.exit_code, 2);
      EXPECT_NE(run.err.find(precision + " needs a CPU with native bf16"),
                std::string::npos)
          << run.err;
      EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
      continue;
    }
    const std::vector<float> embedding =
        nlohmann::json::parse(run.out)["results"][0]["embedding"];
    errors.push_back(testing::RelativeL2(embedding, expected));
    EXPECT_GT(errors.back(), 1e-4);  // not the fp32 numbers
  }
  if (errors.size() == 2) {
    EXPECT_LT(errors[0], 6e-2);  // bf16: 4.4e-2 measured
    EXPECT_LT(errors[1], 2e-2);  // mixed: 1.3e-2 measured
  }
  EXPECT_EQ(Voxprint({"embed", Audio("sample.wav"), "--model", Model(),
                      "--precision", "fp16"})
                .exit_code,
            2);
}

TEST_F(CliTest, CsvHasAHeaderAndOneRowPerWindow) {
  const CliRun run = Voxprint({"embed", Audio("short_1s.wav"), "--model",
                               Model(), "--window", "sliding", "--duration",
                               "0.5", "--step", "0.25", "--format", "csv"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::istringstream lines(run.out);
  std::string header, row;
  std::getline(lines, header);
  EXPECT_EQ(header.rfind("start_s,end_s,covered_end_s,padded,dim_0,", 0), 0u);
  int rows = 0;
  while (std::getline(lines, row)) ++rows;
  // 1 s = 16000 samples, 8000-sample chunks every 4000: 3 full windows.
  EXPECT_EQ(rows, 3);
}

TEST_F(CliTest, PaddedLastWindowIsMarkedAndDropPartialLeavesItOut) {
  // 1 s in 0.5 s windows every 0.3 s: 0-0.5, 0.3-0.8, 0.6-1.1 (padded).
  const std::vector<std::string> args = {
      "embed",   Audio("short_1s.wav"), "--model", Model(),  "--window",
      "sliding", "--duration",          "0.5",     "--step", "0.3"};
  const CliRun run = Voxprint(args);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto result = nlohmann::json::parse(run.out)["results"][0];
  ASSERT_EQ(result["windows"].size(), 3u);
  EXPECT_FALSE(result["windows"][1].contains("padded"));
  EXPECT_EQ(result["windows"][2]["padded"], true);
  EXPECT_NEAR(result["windows"][2]["covered_end_s"].get<double>(), 1.0, 1e-9);
  EXPECT_NE(run.err.find("warning: "), std::string::npos) << run.err;

  std::vector<std::string> dropping = args;
  dropping.push_back("--drop-partial");
  const CliRun dropped = Voxprint(dropping);
  ASSERT_EQ(dropped.exit_code, 0) << dropped.err;
  const auto kept = nlohmann::json::parse(dropped.out)["results"][0]["windows"];
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[1]["embedding"], result["windows"][1]["embedding"]);
}

TEST_F(CliTest, CompareReportsTheWarningsOfEitherSide) {
  const CliRun run = Voxprint({"compare", "--model", Model(),
                               Audio("silence_2s.wav"), Audio("short_1s.wav")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto json = nlohmann::json::parse(run.out);
  ASSERT_EQ(json["warnings_a"].size(), 1u);
  EXPECT_EQ(json["warnings_a"][0]["code"], "no_signal");
  EXPECT_EQ(json["warnings_b"][0]["code"], "short_speech");
  EXPECT_NE(run.err.find("silence_2s.wav: no signal"), std::string::npos)
      << run.err;
}

TEST_F(CliTest, CompareSameRecordingIsSameSpeaker) {
  const CliRun run = Voxprint({"compare", "--model", Model(),
                               Audio("sample.wav"), Audio("sample.wav")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto json = nlohmann::json::parse(run.out);
  EXPECT_NEAR(json["similarity"].get<double>(), 1.0, 1e-6);
  EXPECT_DOUBLE_EQ(json["duration_a_s"].get<double>(), 30.0);
  EXPECT_EQ(json["threshold"].get<double>(), 0.7);
  EXPECT_EQ(json["same_speaker"], true);
}

TEST_F(CliTest, CompareHonoursTheThreshold) {
  const CliRun run = Voxprint({"compare", "--model", Model(), "--threshold",
                               "1.0", Audio("sample.wav"), Audio("dev00.wav")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto json = nlohmann::json::parse(run.out);
  EXPECT_LT(json["similarity"].get<double>(), 1.0);
  EXPECT_EQ(json["same_speaker"], false);
}

TEST_F(CliTest, InfoDescribesTheModelFile) {
  const nlohmann::json manifest =
      nlohmann::json::parse(ReadText(ReferenceDir() / "manifest.json"));
  for (const std::string name :
       {"pytorch_model.bin", "avg_model.pt", "voxceleb_resnet34_LM.onnx"}) {
    const CliRun run = Voxprint({"info", "--model", Model(name)});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const auto json = nlohmann::json::parse(run.out);
    EXPECT_EQ(json["architecture"], "ResNet34");
    EXPECT_EQ(json["embedding_dim"], 256);
    EXPECT_EQ(json["sample_rate_hz"], 16000);
    EXPECT_EQ(json["features"]["num_mel_bins"], 80);
    EXPECT_EQ(json["file"]["sha256"], manifest["models"][name]["sha256"]);
    EXPECT_GT(json["parameters"].get<int64_t>(), 6000000);
  }
}

TEST_F(CliTest, ModelFromEnvironment) {
  const CliRun run = Voxprint({"info"}, "VOXPRINT_MODEL=" + Quote(Model()));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(nlohmann::json::parse(run.out)["file"]["format"],
            "pyannote checkpoint");
}

TEST_F(CliTest, MissingModelSaysWhereToPutIt) {
  const CliRun run = Voxprint({"embed", Audio("sample.wav")});
  EXPECT_EQ(run.exit_code, 4);
  EXPECT_NE(run.err.find((scratch_ / "cache" / "pytorch_model.bin").string()),
            std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("--model"), std::string::npos) << run.err;
}

TEST_F(CliTest, EveryErrorFileFailsWithOneLineNamingIt) {
  const nlohmann::json manifest =
      nlohmann::json::parse(ReadText(ReferenceDir() / "manifest.json"));
  for (const auto& bad : manifest["errors"]) {
    const std::string path =
        (ReferenceDir() / bad["audio"].get<std::string>()).string();
    SCOPED_TRACE(path);
    const CliRun run = Voxprint({"embed", "-q", path, "--model", Model()});
    if (bad["audio"] == "audio/truncated.wav" && run.exit_code == 0)
      continue;  // decoders may return the samples that are present
    EXPECT_EQ(run.exit_code, 3) << run.err;
    EXPECT_EQ(run.err.rfind("voxprint: error: " + path + ": ", 0), 0u)
        << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  }
}

TEST_F(CliTest, MissingFileIsAnIoError) {
  const CliRun run =
      Voxprint({"embed", (scratch_ / "nope.wav").string(), "--model", Model()});
  EXPECT_EQ(run.exit_code, 7) << run.err;
  EXPECT_NE(run.err.find("nope.wav"), std::string::npos);
}

TEST_F(CliTest, BadParametersAreUsageErrors) {
  EXPECT_EQ(Voxprint({"embed", Audio("sample.wav"), "--model", Model(),
                      "--window", "sliding", "--step", "0"})
                .exit_code,
            2);
  EXPECT_EQ(Voxprint({"embed", Audio("sample.wav"), "--model", Model(),
                      "--start", "10", "--end", "5"})
                .exit_code,
            2);
  EXPECT_EQ(Voxprint({"embed", Audio("sample.wav"), "--window", "diagonal"})
                .exit_code,
            2);
  EXPECT_EQ(Voxprint({"frobnicate"}).exit_code, 2);
}

// Numbers out of range are usage errors (exit 2) with one line naming the
// parameter and its bound, before any work: no crash in the thread library,
// no silent whole-file result for an excerpt past the end, no "internal
// error" for a window of a billion seconds.
TEST_F(CliTest, OutOfRangeNumbersAreUsageErrorsWithOneLine) {
  const struct {
    std::vector<std::string> flags;
    std::string expected;
  } cases[] = {
      {{"--threads", "100000"}, "--threads 100000 is out of range"},
      {{"--threads", "20000"}, "--threads 20000 is out of range"},
      {{"--start", "1e20"}, "start 1e+20 s is out of range"},
      {{"--start", "nan"}, "start nan is out of range"},
      {{"--end", "1e300"}, "end 1e+300 s is out of range"},
      {{"--window", "sliding", "--duration", "1e9"},
       "window duration 1e+09 s is out of range"},
      {{"--window", "sliding", "--step", "0.0001"},
       "window step 0.0001 s is out of range"},
      {{"--window", "sliding", "--step", "0.02"},
       "window step 0.02 s asks for 1351 windows"},
      {{"--jobs", "100000", "--window", "sliding"},
       "--jobs 100000 is out of range"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"embed", "-q", Audio("sample.wav"),
                                     "--model", Model()};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    SCOPED_TRACE(c.flags[0] + " " + c.flags[1]);
    const CliRun run = Voxprint(args);
    EXPECT_EQ(run.exit_code, 2) << run.err;
    EXPECT_EQ(run.err.rfind("voxprint: error: ", 0), 0u) << run.err;
    EXPECT_NE(run.err.find(c.expected), std::string::npos) << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  }
  const CliRun compare =
      Voxprint({"compare", "--model", Model(), "--threshold", "nan",
                Audio("sample.wav"), Audio("sample.wav")});
  EXPECT_EQ(compare.exit_code, 2) << compare.err;
  EXPECT_NE(compare.err.find("threshold nan is out of range"),
            std::string::npos)
      << compare.err;
}

// File names reach error lines escaped: a newline or a terminal escape in a
// name can neither split the line nor reach the terminal.
TEST_F(CliTest, ErrorLinesEscapeControlCharactersInFileNames) {
  const std::string name = "evil\n\x1b[31mred\x1b[0m\rname.wav";
  const fs::path path = scratch_ / name;
  std::ofstream(path) << "not audio at all";
  const CliRun run =
      Voxprint({"embed", "-q", path.string(), "--model", Model()});
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_EQ(run.err.find('\x1b'), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find('\r'), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("evil\\n\\x1b[31mred\\x1b[0m\\rname.wav: "),
            std::string::npos)
      << run.err;
  // A missing file with such a name too (an I/O error).
  const CliRun missing =
      Voxprint({"embed", "-q", (scratch_ / "gone\nfile.wav").string(),
                "--model", Model()});
  EXPECT_EQ(missing.exit_code, 7) << missing.err;
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1)
      << missing.err;
  EXPECT_NE(missing.err.find("gone\\nfile.wav"), std::string::npos)
      << missing.err;
}

// CLI11's own parse errors quote the user's value: one escaped line too.
TEST_F(CliTest, ParseErrorsAreOneEscapedLine) {
  const CliRun run =
      Voxprint({"embed", Audio("sample.wav"), "--window", "bad\n\x1b[31m"});
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_EQ(run.err.rfind("voxprint: error: ", 0), 0u) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_EQ(run.err.find('\x1b'), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("bad\\n\\x1b[31m"), std::string::npos) << run.err;
}

// The kit's hostile model (finite weights, non-finite embeddings): refused
// as a model error (exit 4) or failed as non-finite (exit 1), never exit 0
// with null embeddings or a null similarity.
TEST_F(CliTest, AModelProducingNaNNeverPrintsNulls) {
  const fs::path hostile =
      ReferenceDir() / "hostile" / "bomb_stride0_base256.pt";
  if (!fs::exists(hostile)) GTEST_SKIP() << hostile << " is absent";
  const std::vector<std::vector<std::string>> commands = {
      {"embed", Audio("short_1s.wav"), "--model", hostile.string()},
      {"embed", Audio("short_1s.wav"), "--model", hostile.string(), "--format",
       "csv"},
      {"compare", "--model", hostile.string(), Audio("short_1s.wav"),
       Audio("short_1s.wav")},
  };
  for (const auto& args : commands) {
    SCOPED_TRACE(args[0] + " " + args.back());
    const CliRun run = Voxprint(args);
    EXPECT_TRUE(run.exit_code == 4 || run.exit_code == 1)
        << run.exit_code << ": " << run.err;
    EXPECT_EQ(run.out.find("null"), std::string::npos) << run.out;
    EXPECT_EQ(run.out.find("nan"), std::string::npos) << run.out;
    // One error line (after the line on the device chosen).
    EXPECT_EQ(run.err.find("voxprint: error: "),
              run.err.rfind("voxprint: error: "))
        << run.err;
    EXPECT_NE(run.err.find("voxprint: error: "), std::string::npos) << run.err;
    if (run.exit_code == 1) {
      EXPECT_NE(run.err.find("non-finite values (NaN/Inf)"), std::string::npos)
          << run.err;
    }
  }
}

// SIGINT during a long job: the job is cancelled, one line, exit 130.
TEST_F(CliTest, InterruptCancelsTheJobWithExit130) {
  const fs::path err = scratch_ / "interrupt.txt";
  // 541 windows of 3 s: many seconds of work, interrupted after 1.5 s.
  const std::string command =
      "VOXPRINT_OFFLINE=1 " + Quote(VOXPRINT_CLI_PATH) + " embed -q " +
      Quote(Audio("sample.wav")) + " --model " + Quote(Model()) +
      " --window sliding --step 0.05 >/dev/null 2>" + Quote(err) +
      " & pid=$!; sleep 1.5; kill -INT $pid; start=$(date +%s%N); wait $pid; "
      "code=$?; end=$(date +%s%N); echo $code $(( (end - start) / 1000000 ))";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  int code = -1;
  long waited_ms = -1;
  ASSERT_EQ(std::fscanf(pipe, "%d %ld", &code, &waited_ms), 2);
  ::pclose(pipe);
  const std::string text = ReadText(err);
  EXPECT_EQ(code, 130) << text;
  EXPECT_LT(waited_ms, 2000) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find("cancelled"), std::string::npos) << text;
}

TEST_F(CliTest, EveryCommandHasHelp) {
  for (const std::string command : {"embed", "compare", "info"}) {
    const CliRun run = Voxprint({command, "--help"});
    EXPECT_EQ(run.exit_code, 0) << command;
    EXPECT_NE(run.out.find("--model"), std::string::npos) << command;
  }
}

}  // namespace
}  // namespace voxprint
