// The per-CPU choice between oneDNN's two fp32 Winograd kernels: both give
// the reference's numbers, the choice is remembered per CPU in a cache file,
// and a damaged cache only costs a new measurement.
#include "backends/cpu/winograd-choice.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "backends/cpu/cpu-backend.h"
#include "support/random-resnet.h"
#include "support/reference-kit.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;
using backends::cpu::CachedOrTimedWinogradKernel;
using backends::cpu::WinogradKernel;
using backends::cpu::WinogradKernelChoice;

class TemporaryDirectory {
 public:
  TemporaryDirectory() {
    std::string pattern =
        (fs::temp_directory_path() / "voxprint-wino-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TemporaryDirectory() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

const char* KernelWord(WinogradKernel kernel) {
  return kernel == WinogradKernel::kF4x4 ? "f4x4" : "f2x2";
}

WinogradKernel Other(WinogradKernel kernel) {
  return kernel == WinogradKernel::kF4x4 ? WinogradKernel::kF2x2
                                         : WinogradKernel::kF4x4;
}

TEST(WinogradChoice, MeasuresOnceThenReadsTheCache) {
  TemporaryDirectory dir;
  const fs::path cache = dir.path() / "sub" / "cpu-kernels.txt";
  const WinogradKernel measured = CachedOrTimedWinogradKernel(cache, 1);
  const std::string key = backends::cpu::CpuIdentity() + "/threads 1";
  EXPECT_EQ(ReadAll(cache),
            std::string(KernelWord(measured)) + "\t" + key + "\n");

  // The file is believed: the opposite answer written there comes back,
  // and other CPUs' lines are kept when this one's is rewritten.
  {
    std::ofstream out(cache, std::ios::trunc);
    out << "f2x2\tanother CPU/threads 1\n"
        << KernelWord(Other(measured)) << "\t" << key << "\n";
  }
  EXPECT_EQ(CachedOrTimedWinogradKernel(cache, 1), Other(measured));
  CachedOrTimedWinogradKernel(cache, 2);
  const std::string text = ReadAll(cache);
  EXPECT_NE(text.find("f2x2\tanother CPU/threads 1\n"), std::string::npos);
  EXPECT_NE(text.find(key + "\n"), std::string::npos);
  EXPECT_NE(text.find(backends::cpu::CpuIdentity() + "/threads 2\n"),
            std::string::npos);
}

TEST(WinogradChoice, DamagedOrHugeCacheIsMeasuredAgain) {
  TemporaryDirectory dir;
  const fs::path cache = dir.path() / "cpu-kernels.txt";
  const std::string key = backends::cpu::CpuIdentity() + "/threads 1";
  for (const std::string& junk :
       {std::string("\x00\xff\t\n\tf4x4\n", 9), "f9x9\t" + key + "\n",
        std::string(70 * 1024, 'x') + "\nf2x2\t" + key + "\n"}) {
    {
      std::ofstream out(cache, std::ios::binary | std::ios::trunc);
      out << junk;
    }
    const WinogradKernel kernel = CachedOrTimedWinogradKernel(cache, 1);
    // A measurement was made and recorded in place of the junk.
    EXPECT_NE(ReadAll(cache).find(std::string(KernelWord(kernel)) + "\t" + key +
                                  "\n"),
              std::string::npos);
  }
  // A cache that cannot be written (a directory in its place) still answers.
  fs::remove(cache);
  fs::create_directory(cache);
  CachedOrTimedWinogradKernel(cache, 1);
  EXPECT_TRUE(fs::is_directory(cache));
}

TEST(WinogradChoice, CachePathFollowsTheEnvironment) {
  const char* saved = std::getenv("VOXPRINT_CACHE_DIR");
  const std::string restore = saved != nullptr ? saved : "";
  ::setenv("VOXPRINT_CACHE_DIR", "/some/dir", 1);
  EXPECT_EQ(backends::cpu::WinogradCachePath(),
            fs::path("/some/dir/cpu-kernels.txt"));
  ::setenv("VOXPRINT_CACHE_DIR", "off", 1);
  EXPECT_TRUE(backends::cpu::WinogradCachePath().empty());
  if (saved != nullptr)
    ::setenv("VOXPRINT_CACHE_DIR", restore.c_str(), 1);
  else
    ::unsetenv("VOXPRINT_CACHE_DIR");
}

// Each kernel, forced, gives direct convolution's embeddings on a network
// wide enough for them; F(4x4) replaces F(2x2) wherever oneDNN offers both.
class ForcedWinogradKernel
    : public ::testing::TestWithParam<WinogradKernelChoice> {};

TEST_P(ForcedWinogradKernel, MatchesDirectConvolution) {
  const model::ResNetWeights w = testing::RandomWeights(testing::WideBasic(), 21);
  backends::cpu::CpuTuning direct;
  direct.algorithm = backends::cpu::ConvAlgorithm::kDirect;
  backends::cpu::CpuTuning winograd;
  winograd.algorithm = backends::cpu::ConvAlgorithm::kWinograd;
  winograd.winograd_kernel = GetParam();
  BackendOptions options;
  options.num_threads = 1;
  auto exact = backends::cpu::CreateCpuBackend(options, direct)
                   ->Prepare(w)
                   ->NewSession();
  auto session = backends::cpu::CreateCpuBackend(options, winograd)
                     ->Prepare(w)
                     ->NewSession();
  for (const int64_t frames : {61, 200}) {
    SCOPED_TRACE("frames " + std::to_string(frames));
    const std::vector<float> features = testing::RandomFeatures(frames * 80, 3);
    const std::vector<float> expected = exact->Run(features, 1, frames);
    const std::vector<float> actual = session->Run(features, 1, frames);
    EXPECT_TRUE(testing::CloseInRelativeL2(actual, expected, 1e-4));
    for (const std::string& layer :
         backends::cpu::LastLayerAlgorithms(*session)) {
      // F(2x2) is oneDNN's own order, which has F(4x4) for some shapes.
      if (GetParam() == WinogradKernelChoice::kF4x4) {
        EXPECT_EQ(layer.find("jit_fp32_wino_2x3"), std::string::npos) << layer;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Both, ForcedWinogradKernel,
                         ::testing::Values(WinogradKernelChoice::kF2x2,
                                           WinogradKernelChoice::kF4x4));

}  // namespace
}  // namespace voxprint
