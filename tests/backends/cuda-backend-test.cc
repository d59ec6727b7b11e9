// The CUDA backend: how the registry reports it when it cannot run (any
// build, any machine), and its conformance to the CPU backend on random
// small ResNets and on the reference kit (only with a usable GPU; otherwise
// those tests skip with the reason).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "backends/registry.h"
#include "model/model-file.h"
#include "model/resnet-weights.h"
#include "support/random-resnet.h"
#include "support/reference-kit.h"
#include "voxprint/backend.h"
#include "voxprint/error.h"

namespace voxprint {
namespace {

using model::ResNetWeights;
using testing::CloseInRelativeL2;
using testing::RandomFeatures;

// Empty when "cuda" can be created here, else why not.
std::string CudaUnusableReason() {
  if (!backends::BuiltWithCuda()) return "built without CUDA";
  try {
    CreateBackend("cuda");
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kBackendUnavailable) throw;
    return e.what();
  }
  return "";
}

#define REQUIRE_CUDA_DEVICE()                                          \
  do {                                                                 \
    const std::string reason = CudaUnusableReason();                   \
    if (!reason.empty()) GTEST_SKIP() << "no usable CUDA: " << reason; \
  } while (0)

template <typename Call>
ErrorCode CodeOf(Call&& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;
}

// ---------------------------------------------------------------------------
// Registry behaviour without a usable device (this holds on CI machines).

TEST(CudaRegistry, UnusableCudaIsAnErrorWithTheReason) {
  if (CudaUnusableReason().empty())
    GTEST_SKIP() << "a CUDA device is usable here";
  for (const char* device : {"cuda", "cuda:0"}) {
    try {
      CreateBackend(device);
      FAIL() << device << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kBackendUnavailable);
      const std::string message = e.what();
      EXPECT_NE(message.find(device), std::string::npos) << message;
      // "device "cuda": " followed by a reason.
      EXPECT_GT(message.size(), std::string(device).size() + 12) << message;
      if (!backends::BuiltWithCuda()) {
        EXPECT_NE(message.find("built without CUDA"), std::string::npos)
            << message;
      }
    }
  }
}

TEST(CudaRegistry, AutoSaysWhatItChose) {
  std::string why;
  auto backend = CreateBackend("auto", {}, &why);
  const std::string unusable = CudaUnusableReason();
  if (unusable.empty()) {
    EXPECT_EQ(backend->Info().name, "cuda");
    EXPECT_EQ(why, "auto: using cuda:0 (a usable CUDA device)");
    // bf16 and mixed are CPU options: auto keeps them there.
    for (const std::string precision : {"bf16", "mixed"}) {
      BackendOptions bf16;
      bf16.precision = precision;
      std::string why_bf16;
      try {
        EXPECT_EQ(CreateBackend("auto", bf16, &why_bf16)->Info().name, "cpu");
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);  // no native bf16
      }
      EXPECT_NE(why_bf16.find(precision), std::string::npos) << why_bf16;
    }
  } else {
    EXPECT_EQ(backend->Info().name, "cpu");
    EXPECT_EQ(why.rfind("auto: using cpu (", 0), 0u) << why;
    EXPECT_EQ(why.back(), ')') << why;
    if (!backends::BuiltWithCuda()) {
      EXPECT_NE(why.find("built without CUDA"), std::string::npos) << why;
    } else {
      EXPECT_NE(why.find("no usable CUDA device: "), std::string::npos) << why;
    }
  }
}

TEST(CudaRegistry, Tf32IsForTheCudaBackendOnly) {
  BackendOptions tf32;
  tf32.precision = "tf32";
  try {
    CreateBackend("cpu", tf32);
    FAIL() << "cpu accepted tf32";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("cuda"), std::string::npos)
        << e.what();
  }
}

TEST(CudaRegistry, DeviceIndexIsChecked) {
  EXPECT_EQ(CodeOf([] { CreateBackend("cuda:x"); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([] { CreateBackend("cuda:"); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([] { CreateBackend("cuda:-1"); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([] { CreateBackend("cuda:999"); }),
            ErrorCode::kBackendUnavailable);
}

// ---------------------------------------------------------------------------
// Conformance to the CPU backend (needs a GPU).

ResNetWeights RandomWeights(ResidualBlockKind kind, int feature_dim,
                            uint32_t seed) {
  ResNetArchitecture arch;
  arch.name = "test";
  arch.block = kind;
  arch.blocks_per_stage = {2, 1, 2, 1};
  arch.base_channels = 8;
  arch.feature_dim = feature_dim;
  arch.embedding_dim = 16;
  return testing::RandomWeights(arch, seed);
}

std::vector<float> RunOn(const std::string& device, const ResNetWeights& w,
                         const std::vector<float>& features, int batch,
                         int64_t frames) {
  BackendOptions options;
  options.num_threads = 2;
  return CreateBackend(device, options)
      ->Prepare(w)
      ->NewSession()
      ->Run(features, batch, frames);
}

constexpr double kTolerance = 1e-5;

TEST(CudaConformance, InfoDescribesTheDevice) {
  REQUIRE_CUDA_DEVICE();
  const BackendInfo info = CreateBackend("cuda:0")->Info();
  EXPECT_EQ(info.name, "cuda");
  EXPECT_EQ(info.device_index, 0);
  EXPECT_EQ(info.precision, "fp32");
  EXPECT_NE(info.description.find("cuDNN"), std::string::npos)
      << info.description;
  for (const std::string precision : {"bf16", "mixed"}) {
    BackendOptions bf16;
    bf16.precision = precision;
    EXPECT_EQ(CodeOf([&] { CreateBackend("cuda", bf16); }),
              ErrorCode::kInvalidArgument);
  }
}

TEST(CudaConformance, BasicBlocksMatchCpu) {
  REQUIRE_CUDA_DEVICE();
  const ResNetWeights w = RandomWeights(ResidualBlockKind::kBasic, 16, 1);
  auto session = CreateBackend("cuda")->Prepare(w)->NewSession();
  for (const auto& [batch, frames] : std::vector<std::pair<int, int64_t>>{
           {1, 9}, {1, 16}, {2, 17}, {3, 64}, {1, 203}, {2, 301}}) {
    SCOPED_TRACE("batch " + std::to_string(batch) + " frames " +
                 std::to_string(frames));
    const auto features = RandomFeatures(batch * frames * 16, frames);
    EXPECT_TRUE(CloseInRelativeL2(session->Run(features, batch, frames),
                                  RunOn("cpu", w, features, batch, frames),
                                  kTolerance));
  }
}

TEST(CudaConformance, BottleneckBlocksAndRealBinsMatchCpu) {
  REQUIRE_CUDA_DEVICE();
  const ResNetWeights w = RandomWeights(ResidualBlockKind::kBottleneck, 80, 2);
  const auto features = RandomFeatures(2 * 150 * 80, 3);
  EXPECT_TRUE(CloseInRelativeL2(RunOn("cuda", w, features, 2, 150),
                                RunOn("cpu", w, features, 2, 150), kTolerance));
}

TEST(CudaConformance, SingleOutputFrameGivesNaNLikeTorch) {
  REQUIRE_CUDA_DEVICE();
  const ResNetWeights w = RandomWeights(ResidualBlockKind::kBasic, 16, 4);
  for (int64_t frames : {1, 8}) {
    const auto features = RandomFeatures(frames * 16, 5);
    for (float x : RunOn("cuda", w, features, 1, frames))
      EXPECT_TRUE(std::isnan(x)) << frames << " frames";
  }
}

TEST(CudaConformance, BatchAndReusedSessionAreConsistent) {
  REQUIRE_CUDA_DEVICE();
  const ResNetWeights w = RandomWeights(ResidualBlockKind::kBasic, 16, 6);
  auto model = CreateBackend("cuda")->Prepare(w);
  auto reused = model->NewSession();
  const int batch = 4;
  const int64_t frames = 45;
  const auto features = RandomFeatures(batch * frames * 16, 7);
  const auto batched = reused->Run(features, batch, frames);
  for (int b = 0; b < batch; ++b) {
    const std::span<const float> item(features.data() + b * frames * 16,
                                      frames * 16);
    // A batch and a single input may run different cuDNN algorithms
    // (measured for batches): equal to float rounding (1.3e-6 seen).
    EXPECT_TRUE(
        CloseInRelativeL2(std::span<const float>(batched).subspan(b * 16, 16),
                          reused->Run(item, 1, frames), kTolerance))
        << "item " << b;
  }
  // Shapes compiled earlier, grown buffers: same result as a fresh session.
  for (int64_t length : {50, 400, 9, 50}) {
    const auto x = RandomFeatures(length * 16, 100 + length);
    EXPECT_EQ(reused->Run(x, 1, length), model->NewSession()->Run(x, 1, length))
        << length << " frames";
  }
}

// Many files: RunMixed batches inputs of similar length, padded and masked;
// each row is what the input alone gives (and what the CPU gives).
TEST(CudaConformance, MixedLengthsMatchEachInputAlone) {
  REQUIRE_CUDA_DEVICE();
  for (const auto kind :
       {ResidualBlockKind::kBasic, ResidualBlockKind::kBottleneck}) {
    const ResNetWeights w = RandomWeights(kind, 16, 8);
    auto gpu = CreateBackend("cuda")->Prepare(w)->NewSession();
    BackendOptions options;
    options.num_threads = 2;
    auto cpu = CreateBackend("cpu", options)->Prepare(w)->NewSession();
    const std::vector<int64_t> lengths = {40,  9,  41,  300, 44,  17,
                                          103, 33, 100, 35,  301, 16};
    std::vector<std::vector<float>> features;
    std::vector<Session::Input> inputs;
    for (size_t i = 0; i < lengths.size(); ++i)
      features.push_back(RandomFeatures(lengths[i] * 16, 50 + i));
    for (size_t i = 0; i < lengths.size(); ++i)
      inputs.push_back({features[i], lengths[i]});
    const std::vector<float> mixed = gpu->RunMixed(inputs);
    const std::vector<float> mixed_cpu = cpu->RunMixed(inputs);
    ASSERT_EQ(mixed.size(), lengths.size() * 16);
    for (size_t i = 0; i < lengths.size(); ++i) {
      SCOPED_TRACE("input " + std::to_string(i) + " of " +
                   std::to_string(lengths[i]) + " frames");
      const std::span<const float> row =
          std::span<const float>(mixed).subspan(i * 16, 16);
      EXPECT_TRUE(CloseInRelativeL2(row, gpu->Run(features[i], 1, lengths[i]),
                                    kTolerance));
      EXPECT_TRUE(CloseInRelativeL2(
          row, std::span<const float>(mixed_cpu).subspan(i * 16, 16),
          kTolerance));
    }
  }
}

TEST(CudaConformance, RejectsMismatchedInput) {
  REQUIRE_CUDA_DEVICE();
  const ResNetWeights w = RandomWeights(ResidualBlockKind::kBasic, 16, 1);
  auto session = CreateBackend("cuda")->Prepare(w)->NewSession();
  const auto features = RandomFeatures(20 * 16, 1);
  EXPECT_EQ(CodeOf([&] { session->Run(features, 1, 21); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([&] { session->Run(features, 0, 20); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([&] { session->Run({}, 1, 1); }),
            ErrorCode::kInvalidArgument);
}

// Every kit input's whole embedding from the kit's own (mean-subtracted)
// fbank: the network alone, on the GPU, against the reference and the CPU.
TEST(CudaConformance, ReferenceKitWholeEmbeddings) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  REQUIRE_CUDA_DEVICE();
  const auto kit = testing::ReferenceDir();
  const model::LoadedModel loaded =
      model::LoadModelFile((kit / "models" / "pytorch_model.bin").string());
  auto gpu = CreateBackend("cuda")->Prepare(loaded.weights)->NewSession();
  BackendOptions options;
  options.num_threads = 2;
  auto cpu =
      CreateBackend("cpu", options)->Prepare(loaded.weights)->NewSession();
  int cases = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(kit / "expected")) {
    const std::string name = entry.path().filename().string();
    const std::string suffix = ".fbank.npy";
    if (name.size() <= suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string stem = name.substr(0, name.size() - suffix.size());
    const auto whole_path = kit / "expected" / (stem + ".whole.npy");
    if (!std::filesystem::exists(whole_path)) continue;
    SCOPED_TRACE(stem);
    const auto fbank = testing::LoadNpy(entry.path());
    const auto expected = testing::LoadNpy(whole_path);
    ASSERT_EQ(fbank.shape.size(), 2u);
    const auto actual = gpu->Run(fbank.values, 1, fbank.shape[0]);
    EXPECT_TRUE(CloseInRelativeL2(actual, expected.values, 1e-4));
    EXPECT_TRUE(CloseInRelativeL2(
        actual, cpu->Run(fbank.values, 1, fbank.shape[0]), 1e-4));
    std::cout << stem << ": cuda vs reference rel L2 "
              << testing::RelativeL2(actual, expected.values) << "\n";
    ++cases;
  }
  EXPECT_GT(cases, 0) << "no <name>.fbank.npy with a .whole.npy in the kit";
}

// TF32 (opt-in) is faster and less exact: its error on the kit, bounded
// loosely and printed (bench/RESULTS-GPU.md records it).
TEST(CudaConformance, Tf32IsAnOptInWithinItsError) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  REQUIRE_CUDA_DEVICE();
  const auto kit = testing::ReferenceDir();
  const model::LoadedModel loaded =
      model::LoadModelFile((kit / "models" / "pytorch_model.bin").string());
  const auto fbank =
      testing::LoadNpy(kit / "expected" / "sample_wav.fbank.npy");
  const auto expected =
      testing::LoadNpy(kit / "expected" / "sample_wav.whole.npy");
  BackendOptions tf32;
  tf32.precision = "tf32";
  auto backend = CreateBackend("cuda", tf32);
  EXPECT_EQ(backend->Info().precision, "tf32");
  EXPECT_NE(backend->Info().description.find("TF32"), std::string::npos);
  const auto actual = backend->Prepare(loaded.weights)
                          ->NewSession()
                          ->Run(fbank.values, 1, fbank.shape[0]);
  const double error = testing::RelativeL2(actual, expected.values);
  std::cout << "tf32 vs reference: rel L2 " << error << "\n";
  EXPECT_LT(error, 5e-2);
}

}  // namespace
}  // namespace voxprint
