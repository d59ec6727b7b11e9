// Clustering for diarization: exact on synthetic speakers, and the same
// numbers as SciPy / NumPy (tests/support/diarization_reference.py under
// Debian's /usr/bin/python3) on the same embeddings.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "diarization/linkage.h"
#include "support/error-of.h"
#include "voxprint/diarizer.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;
using testing::ErrorOf;

constexpr int kDim = 256;

struct Synthetic {
  std::vector<float> embeddings;  // [n, kDim]
  std::vector<int> truth;
  int64_t count = 0;
};

// `sizes[s]` windows of speaker s: a random direction per speaker plus
// Gaussian noise of `noise` per dimension, in an interleaved order (as turns
// alternate in a meeting).
Synthetic MakeSpeakers(const std::vector<int>& sizes, double noise,
                       uint32_t seed) {
  std::mt19937 random(seed);
  std::normal_distribution<double> gaussian;
  std::vector<std::vector<double>> centers(sizes.size());
  for (auto& center : centers) {
    double norm = 0.0;
    for (int k = 0; k < kDim; ++k) {
      center.push_back(gaussian(random));
      norm += center.back() * center.back();
    }
    for (double& value : center) value /= std::sqrt(norm);
  }
  std::vector<int> left = sizes;
  Synthetic out;
  for (bool any = true; any;) {
    any = false;
    for (size_t s = 0; s < sizes.size(); ++s) {
      const int run = 1 + static_cast<int>(random() % 4);
      for (int r = 0; r < run && left[s] > 0; ++r, --left[s]) {
        for (int k = 0; k < kDim; ++k)
          out.embeddings.push_back(static_cast<float>(
              3.0 * (centers[s][k] + noise * gaussian(random))));
        out.truth.push_back(static_cast<int>(s));
        ++out.count;
        any = true;
      }
    }
  }
  return out;
}

// Whether two labelings are the same partition (up to the names of labels).
bool SamePartition(const std::vector<int>& a, const std::vector<int>& b) {
  if (a.size() != b.size()) return false;
  std::map<int, int> forward, backward;
  for (size_t i = 0; i < a.size(); ++i) {
    if (forward.emplace(a[i], b[i]).first->second != b[i]) return false;
    if (backward.emplace(b[i], a[i]).first->second != a[i]) return false;
  }
  return true;
}

int CountOf(const std::vector<int>& labels) {
  return static_cast<int>(std::set<int>(labels.begin(), labels.end()).size());
}

ClusteringOptions Spectral() {
  ClusteringOptions options;
  options.method = ClusteringMethod::kSpectral;
  return options;
}

TEST(DiarizationClustering, AgglomerativeFindsSyntheticSpeakersExactly) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const Synthetic data = MakeSpeakers({40, 25, 60, 12}, 0.02, seed);
    const std::vector<int> labels =
        ClusterEmbeddings(data.embeddings, data.count, kDim);
    EXPECT_TRUE(SamePartition(labels, data.truth)) << "seed " << seed;
    EXPECT_EQ(CountOf(labels), 4);
    // The same input, the same labels.
    EXPECT_EQ(labels, ClusterEmbeddings(data.embeddings, data.count, kDim));
  }
}

TEST(DiarizationClustering, SpectralFindsSyntheticSpeakersExactly) {
  for (uint32_t seed : {4u, 5u, 6u}) {
    const Synthetic data = MakeSpeakers({30, 45, 20}, 0.02, seed);
    const std::vector<int> labels =
        ClusterEmbeddings(data.embeddings, data.count, kDim, Spectral());
    EXPECT_TRUE(SamePartition(labels, data.truth)) << "seed " << seed;
    EXPECT_EQ(labels,
              ClusterEmbeddings(data.embeddings, data.count, kDim, Spectral()));
  }
}

TEST(DiarizationClustering, SpeakerCountsAreHonouredByBothMethods) {
  const Synthetic data = MakeSpeakers({40, 40, 40}, 0.02, 7);
  for (ClusteringOptions options : {ClusteringOptions(), Spectral()}) {
    SCOPED_TRACE(ClusteringMethodName(options.method));
    options.num_speakers = 2;
    EXPECT_EQ(
        CountOf(ClusterEmbeddings(data.embeddings, data.count, kDim, options)),
        2);
    options.num_speakers = 5;
    EXPECT_EQ(
        CountOf(ClusterEmbeddings(data.embeddings, data.count, kDim, options)),
        5);
    // Bounds: agglomerative cuts its dendrogram at the bound; spectral takes
    // the largest eigengap inside them.
    const bool ahc = options.method == ClusteringMethod::kAgglomerative;
    options.num_speakers.reset();
    options.max_speakers = 2;
    const int at_most =
        CountOf(ClusterEmbeddings(data.embeddings, data.count, kDim, options));
    EXPECT_LE(at_most, 2);
    if (ahc) {
      EXPECT_EQ(at_most, 2);
    }
    options.max_speakers.reset();
    options.min_speakers = 4;
    const int at_least =
        CountOf(ClusterEmbeddings(data.embeddings, data.count, kDim, options));
    EXPECT_GE(at_least, 4);
    if (ahc) {
      EXPECT_EQ(at_least, 4);
    }
    // Bounds that hold the true count leave it alone.
    options.min_speakers = 2;
    options.max_speakers = 6;
    EXPECT_TRUE(SamePartition(
        ClusterEmbeddings(data.embeddings, data.count, kDim, options),
        data.truth));
  }
}

TEST(DiarizationClustering, TrivialInputsAndBadOptions) {
  EXPECT_TRUE(ClusterEmbeddings({}, 0, kDim).empty());
  const std::vector<float> one(kDim, 0.5f);
  EXPECT_EQ(ClusterEmbeddings(one, 1, kDim), std::vector<int>{0});
  EXPECT_EQ(ClusterEmbeddings(one, 1, kDim, Spectral()), std::vector<int>{0});

  ClusteringOptions options;
  options.min_speakers = 3;
  options.max_speakers = 2;
  Error error = ErrorOf([&] { ClusterEmbeddings(one, 1, kDim, options); });
  EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(error.what()).find("min_speakers"), std::string::npos);
  options = {};
  options.threshold = std::nan("");
  EXPECT_NE(std::string(ErrorOf([&] {
                          ClusterEmbeddings(one, 1, kDim, options);
                        }).what())
                .find("threshold"),
            std::string::npos);
  std::vector<float> bad = one;
  bad[3] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ErrorOf([&] { ClusterEmbeddings(bad, 1, kDim); }).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf([&] { ClusterEmbeddings(one, 2, kDim); }).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf([] { ParseClusteringMethod("kmeans"); }).code(),
            ErrorCode::kInvalidArgument);

  const Synthetic many = MakeSpeakers({30, 30}, 0.02, 8);
  ClusteringOptions small = Spectral();
  small.max_spectral_embeddings = 50;
  error = ErrorOf(
      [&] { ClusterEmbeddings(many.embeddings, many.count, kDim, small); });
  EXPECT_EQ(error.code(), ErrorCode::kResourceLimit);
  EXPECT_NE(std::string(error.what()).find("ahc"), std::string::npos);
}

// ------------------------------------------------------ SciPy / NumPy parity

constexpr const char* kPython = "/usr/bin/python3";

class ClusteringParity : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("voxprint-diarization-test-" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  // The reference's JSON for `data` and `cases`; skips when SciPy is absent.
  nlohmann::json Reference(const Synthetic& data, const nlohmann::json& cases) {
    const fs::path input = dir_ / "embeddings.f32";
    {
      std::ofstream out(input, std::ios::binary);
      out.write(reinterpret_cast<const char*>(data.embeddings.data()),
                static_cast<std::streamsize>(data.embeddings.size() * 4));
    }
    const fs::path cases_file = dir_ / "cases.json";
    std::ofstream(cases_file) << cases.dump();
    const std::string command =
        std::string(kPython) +
        " '" VOXPRINT_SOURCE_DIR "/tests/support/diarization_reference.py' '" +
        input.string() + "' " + std::to_string(data.count) + " " +
        std::to_string(kDim) + " \"$(cat '" + cases_file.string() + "')\" 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
      ADD_FAILURE() << "popen failed";
      return {};
    }
    std::string output;
    char buffer[4096];
    size_t got;
    while ((got = fread(buffer, 1, sizeof buffer, pipe)) > 0)
      output.append(buffer, got);
    const int status = pclose(pipe);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
      skipped_ = true;
      return {};
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ADD_FAILURE() << command << "\n" << output;
      return {};
    }
    return nlohmann::json::parse(output);
  }

  fs::path dir_;
  bool skipped_ = false;
};

TEST_F(ClusteringParity, CentroidLinkageAndFclusterMatchSciPy) {
  // Noisy speakers (the threshold cuts inside the dendrogram) and plain
  // random unit vectors (many inversions).
  for (const auto& [sizes, noise] :
       std::vector<std::pair<std::vector<int>, double>>{
           {{60, 50, 40, 30}, 0.06}, {{150, 120, 80}, 0.05}, {{200}, 1e3}}) {
    Synthetic data = MakeSpeakers(sizes, noise, 11);
    const nlohmann::json reference = Reference(
        data, {{"thresholds", {0.3, 0.5, 0.7045654963945799, 0.9, 1.2}}});
    if (skipped_) GTEST_SKIP() << "SciPy missing under " << kPython;
    ASSERT_FALSE(HasFailure());
    const std::vector<LinkageMerge> merges =
        CentroidLinkage(data.embeddings, data.count, kDim);
    ASSERT_EQ(merges.size(), reference["linkage"].size());
    for (size_t k = 0; k < merges.size(); ++k) {
      const auto& row = reference["linkage"][k];
      ASSERT_EQ(merges[k].first, row[0].get<double>()) << "merge " << k;
      ASSERT_EQ(merges[k].second, row[1].get<double>()) << "merge " << k;
      ASSERT_NEAR(merges[k].distance, row[2].get<double>(),
                  1e-9 * (1.0 + row[2].get<double>()))
          << "merge " << k;
      ASSERT_EQ(merges[k].size, row[3].get<double>()) << "merge " << k;
    }
    for (const auto& [threshold, labels] : reference["fcluster"].items())
      EXPECT_EQ(FlatClusters(merges, data.count, std::stod(threshold)),
                labels.get<std::vector<int>>())
          << "threshold " << threshold;
  }
}

TEST_F(ClusteringParity, AgglomerativeMatchesPyannoteRulesOnSciPy) {
  // Speakers of very different sizes (small clusters get reassigned) and
  // counts asked for.
  Synthetic data = MakeSpeakers({90, 60, 8, 5, 40, 3}, 0.08, 12);
  const nlohmann::json cases = {
      {"ahc",
       {{"default",
         {{"threshold", kDefaultAhcThreshold}, {"min_cluster_size", 12}}},
        {"tight", {{"threshold", 0.45}, {"min_cluster_size", 12}}},
        {"num2",
         {{"threshold", kDefaultAhcThreshold},
          {"min_cluster_size", 12},
          {"num", 2}}},
        {"num6",
         {{"threshold", kDefaultAhcThreshold},
          {"min_cluster_size", 4},
          {"num", 6}}},
        {"min5",
         {{"threshold", kDefaultAhcThreshold},
          {"min_cluster_size", 12},
          {"min", 5}}},
        {"max3", {{"threshold", 0.45}, {"min_cluster_size", 2}, {"max", 3}}}}}};
  const nlohmann::json reference = Reference(data, cases);
  if (skipped_) GTEST_SKIP() << "SciPy missing under " << kPython;
  ASSERT_FALSE(HasFailure());
  for (const auto& [name, c] : cases["ahc"].items()) {
    ClusteringOptions options;
    options.threshold = c["threshold"];
    options.min_cluster_size = c["min_cluster_size"];
    if (c.contains("num")) options.num_speakers = c["num"];
    if (c.contains("min")) options.min_speakers = c["min"];
    if (c.contains("max")) options.max_speakers = c["max"];
    EXPECT_EQ(ClusterEmbeddings(data.embeddings, data.count, kDim, options),
              reference["ahc"][name].get<std::vector<int>>())
        << name;
  }
}

TEST_F(ClusteringParity, SpectralMatchesNumPy) {
  Synthetic data = MakeSpeakers({50, 35, 25, 40}, 0.25, 13);
  const nlohmann::json cases = {
      {"spectral",
       {{"default", {{"neighbors", 10}}},
        {"num3", {{"neighbors", 10}, {"num", 3}}},
        {"min2max6", {{"neighbors", 10}, {"min", 2}, {"max", 6}}},
        {"wide", {{"neighbors", 25}}}}}};
  const nlohmann::json reference = Reference(data, cases);
  if (skipped_) GTEST_SKIP() << "SciPy missing under " << kPython;
  ASSERT_FALSE(HasFailure());
  for (const auto& [name, c] : cases["spectral"].items()) {
    ClusteringOptions options = Spectral();
    options.spectral_neighbors = c["neighbors"];
    if (c.contains("num")) options.num_speakers = c["num"];
    if (c.contains("min")) options.min_speakers = c["min"];
    if (c.contains("max")) options.max_speakers = c["max"];
    options.Validate();
    std::vector<double> eigenvalues;
    const std::vector<int> labels = diarization::SpectralClusters(
        data.embeddings, data.count, kDim, options, &eigenvalues);
    const auto expected =
        reference["spectral"][name]["eigenvalues"].get<std::vector<double>>();
    ASSERT_EQ(eigenvalues.size(), expected.size()) << name;
    for (size_t i = 0; i < expected.size(); ++i)
      EXPECT_NEAR(eigenvalues[i], expected[i], 1e-8)
          << name << " eigenvalue " << i;
    EXPECT_EQ(labels,
              reference["spectral"][name]["labels"].get<std::vector<int>>())
        << name;
  }
}

}  // namespace
}  // namespace voxprint
