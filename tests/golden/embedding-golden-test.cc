// Whole-file, sliding-window and excerpt embeddings of every manifest case,
// with every model file format, against the reference kit.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>

#include "support/reference-kit.h"
#include "voxprint/error.h"
#include "voxprint/extractor.h"

namespace voxprint {
namespace {

using testing::CloseInRelativeL2;
using testing::LoadNpy;
using testing::ReferenceDir;

const char* const kModelFiles[] = {"pytorch_model.bin", "avg_model.pt",
                                   "voxceleb_resnet34_LM.onnx"};

nlohmann::json Manifest() {
  std::ifstream in(ReferenceDir() / "manifest.json");
  return nlohmann::json::parse(in);
}

// One extractor per model file, shared by all tests of the program.
const Extractor& ExtractorFor(const std::string& model_file) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Extractor>> extractors;
  std::lock_guard lock(mutex);
  auto& extractor = extractors[model_file];
  if (!extractor) {
    ExtractorOptions options;
    options.model_path = (ReferenceDir() / "models" / model_file).string();
    options.device = "cpu";
    extractor = std::make_unique<Extractor>(options);
  }
  return *extractor;
}

// Shared-trunk windows against exact ones on the kit's sample.wav, 3 s / 1 s
// (measured: mean cosine 0.53, lowest 0.14 on the padded last window). The
// kit's random weights make overlapping windows far less alike than a
// trained model does (adjacent exact windows: cosine 0.3-0.9), so these
// bounds only guard against regressions of the mode itself.
constexpr double kSharedTrunkMinMeanCosine = 0.45;
constexpr double kSharedTrunkMinCosine = 0.1;

// 16 kHz WAV inputs need no resampler and no lossy codec: the tight bound.
double ToleranceFor(const AudioInfo& audio) {
  return audio.sample_rate_hz == 16000 && audio.container == "wav" ? 1e-4
                                                                   : 1e-3;
}

struct GoldenCase {
  std::string model_file;
  int case_index = -1;  // -1: the kit is absent
  std::string audio;    // for the test name
};

void PrintTo(const GoldenCase& golden, std::ostream* out) {
  *out << golden.model_file << " on " << golden.audio;
}

std::string CaseName(const ::testing::TestParamInfo<GoldenCase>& info) {
  if (info.param.case_index < 0) return "kit_absent";
  std::string name = info.param.model_file + "_" + info.param.audio;
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

std::vector<GoldenCase> AllCases() {
  if (!testing::HasReferenceKit()) return {GoldenCase{}};
  const nlohmann::json manifest_cases = Manifest()["cases"];
  std::vector<GoldenCase> cases;
  for (const char* model : kModelFiles)
    for (size_t i = 0; i < manifest_cases.size(); ++i)
      cases.push_back({model, static_cast<int>(i),
                       manifest_cases[i]["audio"].get<std::string>()});
  return cases;
}

class EmbeddingGolden : public ::testing::TestWithParam<GoldenCase> {
 protected:
  void SetUp() override {
    VOXPRINT_REQUIRE_REFERENCE_KIT();
    spec_ = Manifest()["cases"][GetParam().case_index];
    audio_path_ = (ReferenceDir() / spec_["audio"].get<std::string>()).string();
  }
  const Extractor& extractor() const {
    return ExtractorFor(GetParam().model_file);
  }
  testing::NpyArray Expected(const std::string& file) const {
    return LoadNpy(ReferenceDir() / "expected" / file);
  }
  void Report(const std::string& what, double error) const {
    // Collected into the README's error table.
    std::cout << "[measured] " << GetParam().model_file << " "
              << spec_["audio"].get<std::string>() << " " << what
              << " rel_l2=" << error << std::endl;
  }

  nlohmann::json spec_;
  std::string audio_path_;
};

TEST_P(EmbeddingGolden, WholeFile) {
  const EmbeddingResult result = extractor().EmbedFile(audio_path_);
  const testing::NpyArray expected = Expected(spec_["whole"]);
  EXPECT_EQ(result.duration_s * 16000, spec_["samples_16k"].get<double>());
  Report("whole", testing::RelativeL2(result.embedding, expected.values));
  EXPECT_TRUE(CloseInRelativeL2(result.embedding, expected.values,
                                ToleranceFor(result.audio)));
}

TEST_P(EmbeddingGolden, SlidingWindows) {
  for (const auto& sliding : spec_["sliding"]) {
    EmbedRequest request;
    request.mode = WindowMode::kSliding;
    request.window_duration_s = sliding["duration"];
    request.window_step_s = sliding["step"];
    const EmbeddingResult result = extractor().EmbedFile(audio_path_, request);
    const testing::NpyArray expected = Expected(sliding["expected"]);
    SCOPED_TRACE(sliding["expected"].get<std::string>());
    ASSERT_EQ(static_cast<int64_t>(result.windows.size()), expected.shape[0]);
    std::vector<float> actual;
    for (size_t i = 0; i < result.windows.size(); ++i) {
      const WindowEmbedding& window = result.windows[i];
      EXPECT_DOUBLE_EQ(window.start_s, i * request.window_step_s);
      EXPECT_NEAR(window.end_s - window.start_s, request.window_duration_s,
                  1e-9);
      actual.insert(actual.end(), window.embedding.begin(),
                    window.embedding.end());
    }
    Report("sliding_" + sliding["expected"].get<std::string>(),
           testing::RelativeL2(actual, expected.values));
    EXPECT_TRUE(
        CloseInRelativeL2(actual, expected.values, ToleranceFor(result.audio)));
    // Every window on its own too, so one wrong window (the padded last one,
    // say) cannot hide in the stack. Lossy decoders move single short
    // windows more than the whole array, hence the factor.
    for (int64_t w = 0; w < expected.shape[0]; ++w) {
      const std::span<const float> row(expected.values.data() + w * 256, 256);
      EXPECT_TRUE(CloseInRelativeL2(result.windows[w].embedding, row,
                                    3 * ToleranceFor(result.audio)))
          << "window " << w;
    }
  }
}

TEST_P(EmbeddingGolden, Excerpt) {
  if (spec_["crop"].empty()) GTEST_SKIP() << "no crop case in the manifest";
  for (const auto& crop : spec_["crop"]) {
    EmbedRequest request;
    request.start_s = crop["start"].get<double>();
    request.end_s = crop["end"].get<double>();
    const EmbeddingResult result = extractor().EmbedFile(audio_path_, request);
    const testing::NpyArray expected = Expected(crop["expected"]);
    Report("crop", testing::RelativeL2(result.embedding, expected.values));
    EXPECT_TRUE(CloseInRelativeL2(result.embedding, expected.values,
                                  ToleranceFor(result.audio)))
        << crop["expected"];
  }
}

INSTANTIATE_TEST_SUITE_P(Kit, EmbeddingGolden, ::testing::ValuesIn(AllCases()),
                         CaseName);

// The opt-in shared-trunk mode: one window spanning the whole file is the
// whole-file embedding (same features, same trunk output); 3 s / 1 s windows
// keep the exact windows' times and stay within a measured distance of them.
TEST(SharedTrunk, MatchesWholeFileAndApproximatesExactWindows) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const Extractor& extractor = ExtractorFor("pytorch_model.bin");
  const std::string audio = (ReferenceDir() / "audio" / "sample.wav").string();
  EmbedRequest spanning;
  spanning.mode = WindowMode::kSliding;
  spanning.window_duration_s = 30.0;  // sample.wav is 30.0 s
  spanning.window_step_s = 30.0;
  spanning.shared_trunk = true;
  const EmbeddingResult one = extractor.EmbedFile(audio, spanning);
  ASSERT_EQ(one.windows.size(), 1u);
  EXPECT_TRUE(CloseInRelativeL2(one.windows[0].embedding,
                                extractor.EmbedFile(audio).embedding, 1e-6));

  EmbedRequest exact;
  exact.mode = WindowMode::kSliding;
  EmbedRequest shared = exact;
  shared.shared_trunk = true;
  const EmbeddingResult a = extractor.EmbedFile(audio, exact);
  const EmbeddingResult b = extractor.EmbedFile(audio, shared);
  EXPECT_TRUE(b.shared_trunk);
  ASSERT_EQ(a.windows.size(), b.windows.size());
  double lowest = 1.0;
  double sum = 0.0;
  for (size_t i = 0; i < a.windows.size(); ++i) {
    EXPECT_EQ(a.windows[i].start_s, b.windows[i].start_s);
    EXPECT_EQ(a.windows[i].end_s, b.windows[i].end_s);
    const double cosine =
        CosineSimilarity(a.windows[i].embedding, b.windows[i].embedding);
    lowest = std::min(lowest, cosine);
    sum += cosine;
  }
  const double mean = sum / static_cast<double>(a.windows.size());
  std::cout << "[measured] shared trunk vs exact windows: mean cosine " << mean
            << ", lowest " << lowest << std::endl;
  EXPECT_GT(mean, kSharedTrunkMinMeanCosine);
  EXPECT_GT(lowest, kSharedTrunkMinCosine);
  EXPECT_LT(lowest, 0.9999);  // not silently the exact path
}

// Many files at once (whole mode, the network batched across files of
// similar length): every kit case as the kit expects it and as EmbedFile
// gives it alone; the files that must be refused (and a missing one),
// interleaved, fail exactly as alone, without touching their neighbours;
// outcomes arrive once each, in input order. Excerpts batch too.
TEST(ManyFiles, BatchedWholeFilesMatchKitAndSingleRuns) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const Extractor& extractor = ExtractorFor("pytorch_model.bin");
  const nlohmann::json manifest = Manifest();
  std::vector<std::string> paths;
  std::vector<int> case_of;  // manifest case per path, -1: must fail
  const nlohmann::json& errors = manifest["errors"];
  for (size_t i = 0; i < manifest["cases"].size(); ++i) {
    paths.push_back(
        (ReferenceDir() / manifest["cases"][i]["audio"].get<std::string>())
            .string());
    case_of.push_back(static_cast<int>(i));
    if (i < errors.size()) {
      paths.push_back(
          (ReferenceDir() / errors[i]["audio"].get<std::string>()).string());
      case_of.push_back(-1);
    }
  }
  paths.push_back((ReferenceDir() / "audio" / "no-such-file.wav").string());
  case_of.push_back(-1);

  for (const bool excerpt : {false, true}) {
    SCOPED_TRACE(excerpt ? "excerpt 0.5-1.0 s" : "whole files");
    EmbedRequest request;
    if (excerpt) {
      request.start_s = 0.5;
      request.end_s = 1.0;
    }
    std::vector<BatchOutcome> outcomes;
    extractor.EmbedFiles(paths, request,
                         [&](size_t index, BatchOutcome&& outcome) {
                           EXPECT_EQ(index, outcomes.size());
                           outcomes.push_back(std::move(outcome));
                         });
    ASSERT_EQ(outcomes.size(), paths.size());
    for (size_t i = 0; i < paths.size(); ++i) {
      SCOPED_TRACE(paths[i]);
      const BatchOutcome& outcome = outcomes[i];
      EXPECT_NE(outcome.result.has_value(), outcome.error.has_value());
      try {
        const EmbeddingResult alone = extractor.EmbedFile(paths[i], request);
        ASSERT_TRUE(outcome.result.has_value())
            << "failed in a batch: " << outcome.error->what();
        EXPECT_EQ(outcome.result->source, alone.source);
        EXPECT_EQ(outcome.result->duration_s, alone.duration_s);
        // A batch may run Winograd where a short input alone runs direct
        // convolution (each ~1e-5 from the reference): measured <= 1.1e-5.
        EXPECT_TRUE(CloseInRelativeL2(outcome.result->embedding,
                                      alone.embedding, 3e-5));
        if (case_of[i] >= 0 && !excerpt) {
          const testing::NpyArray expected = LoadNpy(
              ReferenceDir() / "expected" /
              manifest["cases"][case_of[i]]["whole"].get<std::string>());
          EXPECT_TRUE(CloseInRelativeL2(outcome.result->embedding,
                                        expected.values,
                                        ToleranceFor(alone.audio)));
        }
      } catch (const Error& alone) {
        ASSERT_TRUE(outcome.error.has_value()) << "alone: " << alone.what();
        EXPECT_EQ(outcome.error->code(), alone.code());
        EXPECT_STREQ(outcome.error->what(), alone.what());
      }
      if (case_of[i] >= 0 && !excerpt) {
        EXPECT_TRUE(outcome.result.has_value());
      }
      if (case_of[i] < 0 && paths[i].find("truncated") == std::string::npos) {
        EXPECT_TRUE(outcome.error.has_value());
      }
    }
  }
}

// Concurrent calls batched together (on by default on a GPU, asked for here
// on the CPU): every caller gets its own file's embedding, within the kit's
// bound, and a bad input among them fails alone.
TEST(ConcurrentCalls, BatchedCallsMatchTheKit) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  ExtractorOptions options;
  options.model_path =
      (ReferenceDir() / "models" / "pytorch_model.bin").string();
  options.device = "cpu";
  options.backend.num_threads = 1;
  options.batch_concurrent_calls = true;
  const Extractor extractor(options);
  const nlohmann::json manifest = Manifest();
  const size_t cases = std::min<size_t>(manifest["cases"].size(), 6);
  std::vector<std::thread> callers;
  std::vector<std::string> failures(cases + 1);
  for (size_t i = 0; i < cases; ++i) {
    callers.emplace_back([&, i] {
      const nlohmann::json& item = manifest["cases"][i];
      try {
        const EmbeddingResult result = extractor.EmbedFile(
            (ReferenceDir() / item["audio"].get<std::string>()).string());
        const testing::NpyArray expected = LoadNpy(
            ReferenceDir() / "expected" / item["whole"].get<std::string>());
        const double error =
            testing::RelativeL2(result.embedding, expected.values);
        if (!(error <= ToleranceFor(result.audio)))
          failures[i] = item["audio"].get<std::string>() + ": rel L2 " +
                        std::to_string(error);
      } catch (const Error& e) {
        failures[i] = e.what();
      }
    });
  }
  callers.emplace_back([&] {
    try {
      extractor.EmbedFile(
          (ReferenceDir() / "audio" / "not_audio.wav").string());
      failures.back() = "not_audio.wav: no error";
    } catch (const Error&) {
    }
  });
  for (auto& caller : callers) caller.join();
  for (const std::string& failure : failures) EXPECT_EQ(failure, "");
}

// A callback that throws stops the job (its helper thread stopped and
// joined, nothing left running); the extractor goes on serving.
TEST(ManyFiles, AThrowingCallbackStopsTheJobCleanly) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const Extractor& extractor = ExtractorFor("pytorch_model.bin");
  // 130 files of 1 s: more than one round (~2 min of audio), so the helper
  // is still decoding the next files when the callback throws.
  const std::vector<std::string> paths(
      130, (ReferenceDir() / "audio" / "short_1s.wav").string());
  size_t seen = 0;
  EXPECT_THROW(extractor.EmbedFiles(paths, {},
                                    [&](size_t, BatchOutcome&&) {
                                      if (++seen == 3)
                                        throw std::runtime_error("enough");
                                    }),
               std::runtime_error);
  EXPECT_EQ(seen, 3u);
  EXPECT_EQ(extractor.EmbedFile(paths[0]).embedding.size(), 256u);
}

// Sliding windows over many files go file by file, each outcome handed out
// as soon as it is known.
TEST(ManyFiles, SlidingWindowsGoFileByFile) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  const Extractor& extractor = ExtractorFor("pytorch_model.bin");
  const std::vector<std::string> paths = {
      (ReferenceDir() / "audio" / "short_1s.wav").string(),
      (ReferenceDir() / "audio" / "no-such-file.wav").string(),
      (ReferenceDir() / "audio" / "silence_2s.wav").string()};
  EmbedRequest sliding;
  sliding.mode = WindowMode::kSliding;
  sliding.window_duration_s = 0.5;
  sliding.window_step_s = 0.25;
  std::vector<size_t> order;
  extractor.EmbedFiles(
      paths, sliding, [&](size_t index, BatchOutcome&& outcome) {
        order.push_back(index);
        if (index == 1) {
          ASSERT_TRUE(outcome.error.has_value());
          EXPECT_EQ(outcome.error->code(), ErrorCode::kIoError);
          return;
        }
        ASSERT_TRUE(outcome.result.has_value());
        const EmbeddingResult alone =
            extractor.EmbedFile(paths[index], sliding);
        ASSERT_EQ(outcome.result->windows.size(), alone.windows.size());
        for (size_t w = 0; w < alone.windows.size(); ++w)
          EXPECT_EQ(outcome.result->windows[w].embedding,
                    alone.windows[w].embedding);
      });
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2}));
}

TEST(SharedTrunk, OnlyForSlidingWindows) {
  EmbedRequest request;
  request.shared_trunk = true;
  EXPECT_THROW(request.Validate(), Error);
  request.mode = WindowMode::kSliding;
  EXPECT_NO_THROW(request.Validate());
}

}  // namespace
}  // namespace voxprint
