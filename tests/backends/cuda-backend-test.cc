// The CUDA backend: how the registry reports it when it cannot run (any
// build, any machine), and its conformance to the CPU backend on random
// small ResNets and on the reference kit (only with a usable GPU; otherwise
// those tests skip with the reason).
#include <gtest/gtest.h>

#include <cmath>
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
    // Until the backend is validated on a GPU, auto stays on the CPU and
    // says so (src/backends/registry.cc, kCudaValidatedOnGpu).
    EXPECT_EQ(backend->Info().name, "cpu");
    EXPECT_NE(why.find("not been validated on a GPU"), std::string::npos)
        << why;
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
  BackendOptions bf16;
  bf16.precision = "bf16";
  EXPECT_EQ(CodeOf([&] { CreateBackend("cuda", bf16); }),
            ErrorCode::kInvalidArgument);
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
    EXPECT_TRUE(
        CloseInRelativeL2(std::span<const float>(batched).subspan(b * 16, 16),
                          reused->Run(item, 1, frames), 1e-6))
        << "item " << b;
  }
  // Shapes compiled earlier, grown buffers: same result as a fresh session.
  for (int64_t length : {50, 400, 9, 50}) {
    const auto x = RandomFeatures(length * 16, 100 + length);
    EXPECT_EQ(reused->Run(x, 1, length), model->NewSession()->Run(x, 1, length))
        << length << " frames";
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

TEST(CudaConformance, ReferenceKitWholeFileEmbedding) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  REQUIRE_CUDA_DEVICE();
  const auto kit = testing::ReferenceDir();
  const model::LoadedModel loaded =
      model::LoadModelFile((kit / "models" / "pytorch_model.bin").string());
  const auto fbank =
      testing::LoadNpy(kit / "expected" / "sample_wav.fbank.npy");
  const auto expected =
      testing::LoadNpy(kit / "expected" / "sample_wav.whole.npy");
  ASSERT_EQ(fbank.shape.size(), 2u);
  const auto actual =
      RunOn("cuda", loaded.weights, fbank.values, 1, fbank.shape[0]);
  EXPECT_TRUE(CloseInRelativeL2(actual, expected.values, 1e-4));
  EXPECT_TRUE(CloseInRelativeL2(
      actual, RunOn("cpu", loaded.weights, fbank.values, 1, fbank.shape[0]),
      1e-4));
  std::cout << "cuda vs reference: rel L2 "
            << testing::RelativeL2(actual, expected.values) << "\n";
}

}  // namespace
}  // namespace voxprint
