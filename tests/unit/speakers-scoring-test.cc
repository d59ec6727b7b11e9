// Voiceprints, AS-Norm, EER/minDCF and the .npy and trial readers. AS-Norm
// and the evaluation are cross-checked against NumPy computing them as
// WeSpeaker's score_norm.py and compute_metrics.py do.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "voxprint/error.h"
#include "voxprint/speakers.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;

const char* const kPython = "/usr/bin/python3";

bool HaveNumpy() {
  return std::system(
             (std::string(kPython) + " -c 'import numpy' >/dev/null 2>&1")
                 .c_str()) == 0;
}

std::string RunPython(const std::string& script, const fs::path& dir) {
  const fs::path file = dir / "check.py";
  std::ofstream(file) << script;
  FILE* pipe =
      ::popen((std::string(kPython) + " " + file.string()).c_str(), "r");
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
    out.append(buffer, n);
  EXPECT_EQ(::pclose(pipe), 0) << out;
  return out;
}

class ScoringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("voxprint-scoring-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

std::vector<float> Random(size_t n, std::mt19937& rng, float offset = 0.0f) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng) + offset;
  return v;
}

TEST_F(ScoringTest, AsNormMatchesNumpyComputingItAsWespeaker) {
  if (!HaveNumpy()) GTEST_SKIP() << kPython << " has no numpy";
  constexpr int kDim = 32, kCohort = 500, kPairs = 20;
  std::mt19937 rng(7);
  // An offset shared by all embeddings, as real embeddings share one: the
  // mean subtraction matters.
  const std::vector<float> cohort = Random(size_t(kCohort) * kDim, rng, 0.3f);
  const std::vector<float> enroll = Random(size_t(kPairs) * kDim, rng, 0.3f);
  const std::vector<float> test = Random(size_t(kPairs) * kDim, rng, 0.3f);
  WriteNpyMatrix((dir_ / "cohort.npy").string(), cohort, kCohort, kDim);
  WriteNpyMatrix((dir_ / "enroll.npy").string(), enroll, kPairs, kDim);
  WriteNpyMatrix((dir_ / "test.npy").string(), test, kPairs, kDim);
  const NpyMatrix read = ReadNpyMatrix((dir_ / "cohort.npy").string());
  ASSERT_EQ(read.rows, kCohort);
  ASSERT_EQ(read.values, cohort);
  const AsNorm norm(read.values, kDim, 300);
  const std::string out = RunPython(
      "import numpy as np\n"
      "d = '" +
          dir_.string() +
          "/'\n"
          "c = np.load(d + 'cohort.npy').astype(np.float64)\n"
          "e = np.load(d + 'enroll.npy').astype(np.float64)\n"
          "t = np.load(d + 'test.npy').astype(np.float64)\n"
          "m = c.mean(0)\n"
          "def unit(x): x = x - m; return x / np.linalg.norm(x, axis=1, "
          "keepdims=True)\n"
          "c, e, t = unit(c), unit(e), unit(t)\n"
          "def stats(x):\n"
          "    s = np.sort(x @ c.T, axis=1)[:, ::-1][:, :300]\n"
          "    return s.mean(1), s.std(1)\n"
          "me, se = stats(e); mt, st = stats(t)\n"
          "s = (e * t).sum(1)\n"
          "for v in 0.5 * ((s - me) / se + (s - mt) / st): "
          "print(repr(float(v)))\n",
      dir_);
  std::istringstream lines(out);
  for (int i = 0; i < kPairs; ++i) {
    double expected = 0;
    ASSERT_TRUE(lines >> expected) << out;
    const double actual =
        norm.Score(std::span<const float>(enroll).subspan(i * kDim, kDim),
                   std::span<const float>(test).subspan(i * kDim, kDim));
    EXPECT_NEAR(actual, expected, 1e-4 * std::max(1.0, std::fabs(expected)))
        << "pair " << i;
  }
}

TEST_F(ScoringTest, EerAndMinDcfMatchNumpyComputingThemAsWespeaker) {
  if (!HaveNumpy()) GTEST_SKIP() << kPython << " has no numpy";
  std::mt19937 rng(11);
  std::normal_distribution<double> target(0.6, 0.15), nontarget(0.1, 0.15);
  std::vector<TrialScore> trials;
  std::ofstream scores(dir_ / "scores.txt");
  scores.precision(17);
  for (int i = 0; i < 3000; ++i) {
    const bool is_target = i % 10 == 0;
    const double s = is_target ? target(rng) : nontarget(rng);
    trials.push_back({s, is_target});
    scores << s << ' ' << (is_target ? 1 : 0) << '\n';
  }
  scores.close();
  const Evaluation result = EvaluateTrials(trials, 0.01, 0.01);
  const std::string out = RunPython(
      "import numpy as np\n"
      "a = np.loadtxt('" +
          (dir_ / "scores.txt").string() +
          "')\n"
          "scores, labels = a[:, 0], a[:, 1].astype(int)\n"
          "i = np.argsort(scores, kind='mergesort')\n"
          "labels = labels[i]\n"
          "tgt = labels == 1; imp = labels == 0\n"
          "fnr = np.cumsum(tgt) / np.sum(tgt)\n"
          "fpr = 1 - np.cumsum(imp) / np.sum(imp)\n"
          "d = fnr - fpr\n"
          "x1 = np.flatnonzero(d >= 0)[0]; x2 = np.flatnonzero(d < 0)[-1]\n"
          "a = (fnr[x1] - fpr[x1]) / (fpr[x2] - fpr[x1] - (fnr[x2] - "
          "fnr[x1]))\n"
          "print(repr(float(fnr[x1] + a * (fnr[x2] - fnr[x1]))))\n"
          "p = 0.01\n"
          "c = fnr * p + fpr * (1 - p)\n"
          "print(repr(float(c.min() / min(p, 1 - p))))\n",
      dir_);
  std::istringstream lines(out);
  double eer = 0, min_dcf = 0;
  ASSERT_TRUE(lines >> eer >> min_dcf) << out;
  EXPECT_NEAR(result.eer, eer, 1e-12);
  EXPECT_NEAR(result.min_dcf, min_dcf, 1e-12);
  EXPECT_GT(result.eer, 0.01);
  EXPECT_LT(result.eer, 0.2);
  EXPECT_EQ(result.targets, 300u);
  EXPECT_EQ(result.det.size(), 3000u);
  // At the threshold for 1 % false accepts, at most 1 % of non-targets
  // score above it.
  size_t above = 0;
  for (const TrialScore& t : trials)
    above += !t.target && t.score > result.threshold_at_far;
  EXPECT_LE(above, 27u);
}

TEST_F(ScoringTest, SeparatedScoresGiveZeroErrors) {
  const std::vector<TrialScore> trials = {
      {0.9, true}, {0.8, true}, {0.2, false}, {0.1, false}, {0.3, false}};
  const Evaluation result = EvaluateTrials(trials);
  EXPECT_DOUBLE_EQ(result.eer, 0.0);
  EXPECT_DOUBLE_EQ(result.min_dcf, 0.0);
  EXPECT_DOUBLE_EQ(result.min_dcf_threshold, 0.3);
  EXPECT_THROW(EvaluateTrials(std::vector<TrialScore>{{0.5, true}}), Error);
}

TEST_F(ScoringTest, VoiceprintIsTheNormalisedMeanOfNormalisedEmbeddings) {
  const std::vector<std::vector<float>> embeddings = {{3, 0}, {0, 0.5}};
  const std::vector<float> v = MakeVoiceprint(embeddings);
  EXPECT_NEAR(v[0], std::sqrt(0.5), 1e-7);
  EXPECT_NEAR(v[1], std::sqrt(0.5), 1e-7);
  EXPECT_THROW(MakeVoiceprint(std::vector<std::vector<float>>{{1, 0}, {-1, 0}}),
               Error);
  EXPECT_THROW(MakeVoiceprint(std::vector<std::vector<float>>{{0, 0}}), Error);
}

TEST_F(ScoringTest, NpyReaderRefusesWhatItCannotRead) {
  std::vector<float> values(6, 1.5f);
  WriteNpyMatrix((dir_ / "ok.npy").string(), values, 2, 3);
  const std::string good = [&] {
    std::ifstream in(dir_ / "ok.npy", std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }();
  const auto parse = [](const std::string& bytes) {
    return ParseNpyMatrix(
        {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()},
        "x.npy");
  };
  EXPECT_EQ(parse(good).cols, 3);
  const auto refused = [&](std::string bytes, const std::string& why) {
    try {
      parse(bytes);
      ADD_FAILURE() << "accepted: " << why;
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(error.what()).find(why), std::string::npos)
          << error.what();
    }
  };
  refused("not numpy at all", "no NumPy magic");
  refused(good.substr(0, good.size() - 4), "does not match");
  std::string big_endian = good;
  big_endian.replace(big_endian.find("<f4"), 3, ">f4");
  refused(big_endian, "only little-endian");
  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  refused(fortran, "Fortran order");
  std::string three_d = good;
  three_d.replace(three_d.find("(2, 3)"), 6, "(1,2,3)");
  refused(three_d, "not 2-D");
  std::string huge = good;
  huge.replace(huge.find("(2, 3)"), 6, "(999999999999, 3)");
  refused(huge, "does not match");
  std::string nan = good;
  const float nan_value = NAN;
  std::memcpy(nan.data() + nan.size() - 4, &nan_value, 4);
  refused(nan, "NaN");
  // float64 is read too.
  std::string f8 = good.substr(0, good.size() - 24);
  f8.replace(f8.find("<f4"), 3, "<f8");
  for (int i = 0; i < 6; ++i) {
    const double x = 0.25 * i;
    f8.append(reinterpret_cast<const char*>(&x), 8);
  }
  const NpyMatrix m = parse(f8);
  EXPECT_FLOAT_EQ(m.values[5], 1.25f);
}

TEST_F(ScoringTest, TrialListsInBothFormats) {
  auto trials = ParseTrials("1 id1/a.wav id2/b.wav\n0 a.wav c.wav\n\n# note\n",
                            "vox.txt");
  ASSERT_EQ(trials.size(), 2u);
  EXPECT_TRUE(trials[0].target);
  EXPECT_EQ(trials[0].test, "id2/b.wav");
  EXPECT_FALSE(trials[1].score);
  trials = ParseTrials("e1 t1 0.75 target\ne1 t2 -0.1 nontarget\n", "w.txt");
  EXPECT_DOUBLE_EQ(*trials[0].score, 0.75);
  EXPECT_FALSE(trials[1].target);
  trials = ParseTrials("1 a b 0.5\n", "v.txt");
  EXPECT_DOUBLE_EQ(*trials[0].score, 0.5);
  try {
    ParseTrials("1 a b\n2 a b\n", "bad.txt");
    ADD_FAILURE();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("bad.txt:2"), std::string::npos);
  }
  EXPECT_THROW(ParseTrials("e t nan target\n", "x"), Error);
  EXPECT_THROW(ParseTrials("1 a b 0.5\n0 a c\n", "x"), Error);
  EXPECT_THROW(ParseTrials("", "x"), Error);
}

}  // namespace
}  // namespace voxprint
