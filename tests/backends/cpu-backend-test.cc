// Backend conformance: every backend against a naive double-precision
// forward pass written here, on small random ResNets (basic and bottleneck).
// One TEST_P body per backend name; CPU-only knobs (tiling, algorithms,
// batch splitting) are tested through the CPU backend's internal factory.
#include "backends/cpu/cpu-backend.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backends/registry.h"
#include "model/resnet-weights.h"
#include "support/random-resnet.h"
#include "support/reference-kit.h"
#include "voxprint/backend.h"
#include "voxprint/error.h"

namespace voxprint {
namespace {

using model::FoldedConv;
using model::ResidualBlock;
using model::ResNetWeights;
using testing::CloseInRelativeL2;
using testing::RandomFeatures;
using testing::RandomWeights;
using testing::WideBasic;

// ---------------------------------------------------------------------------
// Random weights shaped like WeSpeaker's ResNet.

ResNetArchitecture SmallBasic() {
  ResNetArchitecture arch;
  arch.name = "test-basic";
  arch.blocks_per_stage = {2, 1, 1, 1};
  arch.base_channels = 4;
  arch.feature_dim = 16;
  arch.embedding_dim = 8;
  return arch;
}

ResNetArchitecture SmallBottleneck() {
  ResNetArchitecture arch;
  arch.name = "test-bottleneck";
  arch.block = ResidualBlockKind::kBottleneck;
  arch.blocks_per_stage = {1, 2, 1, 1};
  arch.base_channels = 4;
  arch.feature_dim = 16;
  arch.embedding_dim = 8;
  return arch;
}

// ---------------------------------------------------------------------------
// Naive reference forward: plain loops, double accumulation, one item.

struct Image {
  int channels = 0, height = 0, width = 0;
  std::vector<double> v;
  double& at(int c, int y, int x) {
    return v[(static_cast<size_t>(c) * height + y) * width + x];
  }
  double at(int c, int y, int x) const {
    return v[(static_cast<size_t>(c) * height + y) * width + x];
  }
};

Image Conv(const Image& in, const FoldedConv& conv, bool relu) {
  const int k = conv.kernel, s = conv.stride, p = conv.padding;
  Image out;
  out.channels = conv.out_channels;
  out.height = (in.height + 2 * p - k) / s + 1;
  out.width = (in.width + 2 * p - k) / s + 1;
  out.v.assign(static_cast<size_t>(out.channels) * out.height * out.width, 0);
  for (int o = 0; o < out.channels; ++o)
    for (int y = 0; y < out.height; ++y)
      for (int x = 0; x < out.width; ++x) {
        double acc = conv.bias[o];
        for (int i = 0; i < in.channels; ++i)
          for (int ky = 0; ky < k; ++ky) {
            const int iy = y * s - p + ky;
            if (iy < 0 || iy >= in.height) continue;
            for (int kx = 0; kx < k; ++kx) {
              const int ix = x * s - p + kx;
              if (ix < 0 || ix >= in.width) continue;
              acc +=
                  conv.weight[((static_cast<size_t>(o) * in.channels + i) * k +
                               ky) *
                                  k +
                              kx] *
                  in.at(i, iy, ix);
            }
          }
        out.at(o, y, x) = relu ? std::max(acc, 0.0) : acc;
      }
  return out;
}

// The trunk's output for one item [frames, bins].
Image ReferenceTrunk(const ResNetWeights& w, const float* features,
                     int64_t frames) {
  const int bins = w.architecture.feature_dim;
  Image x;
  x.channels = 1;
  x.height = bins;
  x.width = static_cast<int>(frames);
  x.v.resize(static_cast<size_t>(bins) * frames);
  for (int64_t t = 0; t < frames; ++t)
    for (int f = 0; f < bins; ++f) x.at(0, f, t) = features[t * bins + f];
  x = Conv(x, w.stem, true);
  for (const auto& stage : w.stages)
    for (const ResidualBlock& block : stage) {
      Image residual = block.shortcut ? Conv(x, *block.shortcut, false) : x;
      Image y = x;
      for (size_t c = 0; c < block.convs.size(); ++c)
        y = Conv(y, block.convs[c], c + 1 < block.convs.size());
      for (size_t i = 0; i < y.v.size(); ++i)
        y.v[i] = std::max(y.v[i] + residual.v[i], 0.0);
      x = std::move(y);
    }
  return x;
}

// Statistics pooling of trunk output frames [first, last), then the
// embedding layer.
std::vector<float> ReferencePoolAndEmbed(const ResNetWeights& w, const Image& x,
                                         int first, int last) {
  const size_t rows = static_cast<size_t>(x.channels) * x.height;
  const int n = last - first;
  std::vector<double> stats(2 * rows);
  for (size_t r = 0; r < rows; ++r) {
    const double* row = x.v.data() + r * x.width + first;
    double mean = 0;
    for (int j = 0; j < n; ++j) mean += row[j];
    mean /= n;
    double m2 = 0;
    for (int j = 0; j < n; ++j) m2 += (row[j] - mean) * (row[j] - mean);
    stats[r] = mean;
    stats[rows + r] = std::sqrt(m2 / (n - 1));  // NaN for n == 1, as torch
  }
  const int dim = w.architecture.embedding_dim;
  std::vector<float> out(dim);
  for (int e = 0; e < dim; ++e) {
    double acc = w.embedding_bias[e];
    for (size_t k = 0; k < stats.size(); ++k)
      acc += w.embedding_weight[e * stats.size() + k] * stats[k];
    out[e] = static_cast<float>(acc);
  }
  return out;
}

std::vector<float> ReferenceEmbedding(const ResNetWeights& w,
                                      const float* features, int64_t frames) {
  const Image trunk = ReferenceTrunk(w, features, frames);
  return ReferencePoolAndEmbed(w, trunk, 0, trunk.width);
}

std::vector<float> ReferenceBatch(const ResNetWeights& w,
                                  const std::vector<float>& features, int batch,
                                  int64_t frames) {
  std::vector<float> out;
  const size_t item = static_cast<size_t>(frames) * w.architecture.feature_dim;
  for (int b = 0; b < batch; ++b) {
    const std::vector<float> e =
        ReferenceEmbedding(w, features.data() + b * item, frames);
    out.insert(out.end(), e.begin(), e.end());
  }
  return out;
}

constexpr double kTolerance = 1e-5;

// ---------------------------------------------------------------------------
// Conformance, per backend name.

class BackendConformance : public ::testing::TestWithParam<std::string> {
 protected:
  std::shared_ptr<const PreparedModel> Prepare(const ResNetWeights& w,
                                               int threads = 2) {
    BackendOptions options;
    options.num_threads = threads;
    return CreateBackend(GetParam(), options)->Prepare(w);
  }
};

TEST_P(BackendConformance, MatchesReferenceOnManyShapes) {
  const ResNetWeights w = RandomWeights(SmallBasic(), 1);
  auto model = Prepare(w);
  EXPECT_EQ(model->EmbeddingDim(), 8);
  auto session = model->NewSession();
  const std::vector<std::pair<int, int64_t>> shapes = {
      {1, 9}, {1, 13}, {1, 16}, {1, 20}, {2, 17}, {3, 64}, {1, 203}, {2, 301}};
  for (const auto& [batch, frames] : shapes) {
    SCOPED_TRACE("batch " + std::to_string(batch) + " frames " +
                 std::to_string(frames));
    const auto features = RandomFeatures(batch * frames * 16, frames);
    const auto actual = session->Run(features, batch, frames);
    const auto expected = ReferenceBatch(w, features, batch, frames);
    EXPECT_TRUE(CloseInRelativeL2(actual, expected, kTolerance));
  }
}

TEST_P(BackendConformance, BottleneckMatchesReference) {
  const ResNetWeights w = RandomWeights(SmallBottleneck(), 2);
  auto session = Prepare(w)->NewSession();
  for (const auto& [batch, frames] :
       std::vector<std::pair<int, int64_t>>{{1, 11}, {2, 40}, {1, 97}}) {
    SCOPED_TRACE("frames " + std::to_string(frames));
    const auto features = RandomFeatures(batch * frames * 16, 7 + frames);
    EXPECT_TRUE(CloseInRelativeL2(session->Run(features, batch, frames),
                                  ReferenceBatch(w, features, batch, frames),
                                  kTolerance));
  }
}

TEST_P(BackendConformance, RealBinsMatchReference) {
  ResNetArchitecture arch = SmallBasic();
  arch.feature_dim = 80;
  arch.blocks_per_stage = {1, 1, 1, 1};
  const ResNetWeights w = RandomWeights(arch, 3);
  auto session = Prepare(w, 1)->NewSession();
  const int64_t frames = 150;
  const auto features = RandomFeatures(frames * 80, 5);
  EXPECT_TRUE(CloseInRelativeL2(session->Run(features, 1, frames),
                                ReferenceBatch(w, features, 1, frames),
                                kTolerance));
}

TEST_P(BackendConformance, SingleOutputFrameGivesNaNLikeTorch) {
  // 8 frames -> one trunk output frame: the unbiased std is 0/0.
  const ResNetWeights w = RandomWeights(SmallBasic(), 1);
  auto session = Prepare(w)->NewSession();
  const auto features = RandomFeatures(8 * 16, 8);
  for (float x : session->Run(features, 1, 8)) EXPECT_TRUE(std::isnan(x));
  const auto shortest = RandomFeatures(16, 1);
  for (float x : session->Run(shortest, 1, 1)) EXPECT_TRUE(std::isnan(x));
}

TEST_P(BackendConformance, BatchEqualsSeparateRuns) {
  const ResNetWeights w = RandomWeights(SmallBasic(), 4);
  auto session = Prepare(w)->NewSession();
  const int batch = 5;
  const int64_t frames = 45;
  const auto features = RandomFeatures(batch * frames * 16, 9);
  const auto batched = session->Run(features, batch, frames);
  ASSERT_EQ(batched.size(), 5u * 8u);
  for (int b = 0; b < batch; ++b) {
    const std::span<const float> item(features.data() + b * frames * 16,
                                      frames * 16);
    const auto single = session->Run(item, 1, frames);
    EXPECT_TRUE(CloseInRelativeL2(
        std::span<const float>(batched).subspan(b * 8, 8), single, 1e-6))
        << "item " << b;
  }
}

TEST_P(BackendConformance, SessionReusedAcrossShapesIsStable) {
  const ResNetWeights w = RandomWeights(SmallBasic(), 5);
  auto model = Prepare(w);
  auto reused = model->NewSession();
  const std::vector<std::pair<int, int64_t>> shapes = {
      {1, 50}, {2, 33}, {1, 50}, {1, 400}, {2, 33}, {1, 9}, {1, 50}};
  for (const auto& [batch, frames] : shapes) {
    const auto features = RandomFeatures(batch * frames * 16, 100 + frames);
    const auto fresh = model->NewSession()->Run(features, batch, frames);
    EXPECT_EQ(reused->Run(features, batch, frames), fresh)
        << "batch " << batch << " frames " << frames;
  }
}

TEST_P(BackendConformance, TwoSessionsInTwoThreads) {
  const ResNetWeights w = RandomWeights(SmallBasic(), 6);
  auto model = Prepare(w, 1);
  const auto a = RandomFeatures(120 * 16, 1);
  const auto b = RandomFeatures(2 * 77 * 16, 2);
  const auto expected_a = model->NewSession()->Run(a, 1, 120);
  const auto expected_b = model->NewSession()->Run(b, 2, 77);
  std::vector<float> got_a, got_b;
  bool ok_a = true, ok_b = true;
  std::thread ta([&] {
    auto s = model->NewSession();
    for (int i = 0; i < 5; ++i) {
      got_a = s->Run(a, 1, 120);
      ok_a = ok_a && got_a == expected_a;
    }
  });
  std::thread tb([&] {
    auto s = model->NewSession();
    for (int i = 0; i < 5; ++i) {
      got_b = s->Run(b, 2, 77);
      ok_b = ok_b && got_b == expected_b;
    }
  });
  ta.join();
  tb.join();
  EXPECT_TRUE(ok_a);
  EXPECT_TRUE(ok_b);
  EXPECT_TRUE(
      CloseInRelativeL2(got_a, ReferenceBatch(w, a, 1, 120), kTolerance));
}

TEST_P(BackendConformance, RejectsMismatchedInput) {
  const ResNetWeights w = RandomWeights(SmallBasic(), 1);
  auto session = Prepare(w)->NewSession();
  const auto features = RandomFeatures(20 * 16, 1);
  auto code_of = [&](auto&& call) {
    try {
      call();
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  EXPECT_EQ(code_of([&] { session->Run(features, 1, 21); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { session->Run(features, 0, 20); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { session->Run(features, 3, 0); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { session->Run({}, 1, 1); }),
            ErrorCode::kInvalidArgument);
}

TEST_P(BackendConformance, RejectsInconsistentWeights) {
  ResNetWeights w = RandomWeights(SmallBasic(), 1);
  w.stages[2][0].convs[1].weight.pop_back();
  try {
    Prepare(w);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kModelError);
    EXPECT_NE(std::string(e.what()).find("stage3.block0.conv2"),
              std::string::npos)
        << e.what();
  }
  ResNetWeights no_shortcut = RandomWeights(SmallBasic(), 1);
  no_shortcut.stages[1][0].shortcut.reset();
  EXPECT_THROW(Prepare(no_shortcut), Error);
  ResNetWeights short_embedding = RandomWeights(SmallBasic(), 1);
  short_embedding.embedding_weight.resize(10);
  EXPECT_THROW(Prepare(short_embedding), Error);
}

TEST_P(BackendConformance, InfoNamesTheDevice) {
  BackendOptions options;
  options.num_threads = 1;
  const BackendInfo info = CreateBackend(GetParam(), options)->Info();
  EXPECT_EQ(info.name, GetParam());
  EXPECT_EQ(info.num_threads, 1);
  EXPECT_EQ(info.precision, "fp32");
  EXPECT_FALSE(info.description.empty());
  EXPECT_GT(CreateBackend(GetParam())->Info().num_threads, 0);
}

INSTANTIATE_TEST_SUITE_P(Cpu, BackendConformance, ::testing::Values("cpu"));

// ---------------------------------------------------------------------------
// Registry.

ErrorCode CreateError(const std::string& device, const BackendOptions& options,
                      std::string* message = nullptr) {
  try {
    CreateBackend(device, options);
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return ErrorCode::kInternal;
}

TEST(BackendRegistry, CudaIsUnavailableWithReason) {
  if (backends::BuiltWithCuda())
    GTEST_SKIP() << "built with CUDA: see cuda-backend-test";
  std::string message;
  EXPECT_EQ(CreateError("cuda", {}, &message), ErrorCode::kBackendUnavailable);
  EXPECT_NE(message.find("built without CUDA"), std::string::npos) << message;
  EXPECT_EQ(CreateError("cuda:1", {}), ErrorCode::kBackendUnavailable);
}

TEST(BackendRegistry, AutoSaysWhatItChose) {
  if (backends::BuiltWithCuda())
    GTEST_SKIP() << "built with CUDA: see cuda-backend-test";
  std::string why;
  auto backend = CreateBackend("auto", {}, &why);
  EXPECT_EQ(backend->Info().name, "cpu");
  EXPECT_EQ(why, "auto: using cpu (voxprint was built without CUDA)");
  EXPECT_NE(CreateBackend("auto"), nullptr);  // why is optional
}

TEST(BackendRegistry, RejectsBadNamesAndOptions) {
  EXPECT_EQ(CreateError("tpu", {}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CreateError("", {}), ErrorCode::kInvalidArgument);
  BackendOptions bad_threads;
  bad_threads.num_threads = -2;
  EXPECT_EQ(CreateError("cpu", bad_threads), ErrorCode::kInvalidArgument);
  for (const std::string precision : {"bf16", "mixed"}) {
    BackendOptions bf16;
    bf16.precision = precision;
    if (backends::cpu::NativeBf16Available()) {
      EXPECT_EQ(CreateBackend("cpu", bf16)->Info().precision, precision);
    } else {
      std::string message;
      EXPECT_EQ(CreateError("cpu", bf16, &message),
                ErrorCode::kInvalidArgument);
      EXPECT_NE(message.find(precision + " needs a CPU with native bf16"),
                std::string::npos)
          << message;
    }
  }
  // What auto keeps on the CPU: the options that run bf16 there.
  EXPECT_TRUE(backends::cpu::PrecisionRunsBf16("bf16"));
  EXPECT_TRUE(backends::cpu::PrecisionRunsBf16("mixed"));
  for (const char* other : {"fp32", "tf32", "fp8", ""})
    EXPECT_FALSE(backends::cpu::PrecisionRunsBf16(other)) << other;
  BackendOptions fp8;
  fp8.precision = "fp8";
  EXPECT_EQ(CreateError("cpu", fp8), ErrorCode::kInvalidArgument);
}
// Random features of the given lengths, and RunMixed's inputs over them.
struct MixedInputs {
  std::vector<std::vector<float>> features;
  std::vector<Session::Input> inputs;
};
MixedInputs RandomMixedInputs(const std::vector<int64_t>& lengths, int bins,
                              uint32_t seed) {
  MixedInputs mixed;
  for (size_t i = 0; i < lengths.size(); ++i)
    mixed.features.push_back(RandomFeatures(lengths[i] * bins, seed + i));
  for (size_t i = 0; i < lengths.size(); ++i)
    mixed.inputs.push_back({mixed.features[i], lengths[i]});
  return mixed;
}

// Row i of RunMixed's result against the reference forward pass of input i.
void ExpectRowsMatchReference(const ResNetWeights& w,
                              std::span<const float> mixed,
                              const MixedInputs& mixed_inputs) {
  const size_t dim = static_cast<size_t>(w.architecture.embedding_dim);
  ASSERT_EQ(mixed.size(), mixed_inputs.inputs.size() * dim);
  for (size_t i = 0; i < mixed_inputs.inputs.size(); ++i) {
    const Session::Input& input = mixed_inputs.inputs[i];
    EXPECT_TRUE(CloseInRelativeL2(
        mixed.subspan(i * dim, dim),
        ReferenceEmbedding(w, input.features.data(), input.frames), kTolerance))
        << "input " << i << ", " << input.frames << " frames";
  }
}

// Inputs of many lengths in one call: each row as the input alone gives it.
TEST_P(BackendConformance, MixedLengthsMatchReference) {
  const ResNetWeights w = RandomWeights(SmallBasic(), 11);
  auto session = Prepare(w)->NewSession();
  EXPECT_TRUE(session->RunMixed({}).empty());
  const std::vector<int64_t> lengths = {40, 9,  64,  41, 13, 100,
                                        57, 23, 301, 44, 42};
  const MixedInputs mixed_inputs = RandomMixedInputs(lengths, 16, 20);
  const auto& [features, inputs] = mixed_inputs;
  const std::vector<float> mixed = session->RunMixed(inputs);
  ExpectRowsMatchReference(w, mixed, mixed_inputs);
  for (size_t i = 0; i < lengths.size(); ++i)
    EXPECT_TRUE(
        CloseInRelativeL2(std::span<const float>(mixed).subspan(i * 8, 8),
                          session->Run(features[i], 1, lengths[i]), 1e-6))
        << "input " << i << ", " << lengths[i] << " frames";
  // Similar lengths shared runs (the CPU backend batches them).
  const std::vector<int> runs = backends::cpu::LastMixedRuns(*session);
  if (GetParam() == "cpu") {
    EXPECT_LT(runs.size(), lengths.size());
    EXPECT_EQ(std::accumulate(runs.begin(), runs.end(), 0),
              static_cast<int>(lengths.size()));
  }
  const std::vector<float> too_short(16 * 5);
  const Session::Input bad[] = {{features[0], lengths[0]}, {too_short, 6}};
  try {
    session->RunMixed(bad);
    ADD_FAILURE() << "6 frames (wrong size) accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument) << error.what();
  }
}

// ---------------------------------------------------------------------------
// CPU-only knobs.

std::shared_ptr<const PreparedModel> PrepareCpu(
    const ResNetWeights& w, const backends::cpu::CpuTuning& tuning,
    int threads = 1) {
  BackendOptions options;
  options.num_threads = threads;
  return backends::cpu::CreateCpuBackend(options, tuning)->Prepare(w);
}

TEST(CpuBackend, TimeTilesEqualUntiledRun) {
  const ResNetWeights w = RandomWeights(SmallBasic(), 8);
  backends::cpu::CpuTuning tiny_tiles;
  tiny_tiles.max_untiled_frames = 100;
  tiny_tiles.tile_frames = 160;
  backends::cpu::CpuTuning untiled;
  untiled.max_untiled_frames = 1 << 20;
  auto tiled_session = PrepareCpu(w, tiny_tiles)->NewSession();
  auto untiled_session = PrepareCpu(w, untiled)->NewSession();
  // Several lengths so the last tile takes every phase modulo the stride.
  for (int64_t frames : {101, 160, 161, 333, 1000, 1003, 1007}) {
    SCOPED_TRACE("frames " + std::to_string(frames));
    const auto features = RandomFeatures(2 * frames * 16, frames);
    const auto tiled = tiled_session->Run(features, 2, frames);
    EXPECT_TRUE(CloseInRelativeL2(
        tiled, untiled_session->Run(features, 2, frames), 1e-6));
    EXPECT_TRUE(CloseInRelativeL2(tiled, ReferenceBatch(w, features, 2, frames),
                                  kTolerance));
  }
}

// Shared-trunk windows pool the one trunk output: each window takes the
// output frames of a run on it alone (ceil(frames / 8) for a stride of 8),
// from its start frame / 8 rounded, clipped to the input; tiled or not.
TEST(CpuBackend, SharedTrunkWindowsPoolOneTrunkOutput) {
  const ResNetWeights w = RandomWeights(SmallBasic(), 12);
  const int64_t frames = 333;  // 42 trunk output frames
  const auto features = RandomFeatures(frames * 16, 5);
  const Image trunk = ReferenceTrunk(w, features.data(), frames);
  ASSERT_EQ(trunk.width, 42);
  const std::vector<Session::FrameWindow> windows = {
      {0, 40}, {13, 40}, {50, 64}, {100, 333}, {300, 40}, {332, 40}};
  // (first, last) trunk output frames of each window, worked out by hand.
  const std::vector<std::pair<int, int>> ranges = {
      {0, 5}, {2, 7}, {6, 14}, {13, 42}, {38, 42}, {41, 42}};
  std::vector<float> expected;
  for (const auto& [first, last] : ranges) {
    const auto e = ReferencePoolAndEmbed(w, trunk, first, last);
    expected.insert(expected.end(), e.begin(), e.end());
  }
  backends::cpu::CpuTuning tiny_tiles;
  tiny_tiles.max_untiled_frames = 100;
  tiny_tiles.tile_frames = 160;
  for (const auto& tuning : {backends::cpu::CpuTuning{}, tiny_tiles}) {
    auto session = PrepareCpu(w, tuning)->NewSession();
    const auto actual = session->RunSharedTrunk(features, frames, windows);
    ASSERT_EQ(actual.size(), expected.size());
    // The last window has one output frame: NaN std, as torch gives.
    const size_t finite = expected.size() - 8;
    EXPECT_TRUE(CloseInRelativeL2(
        std::vector<float>(actual.begin(), actual.begin() + finite),
        std::vector<float>(expected.begin(), expected.begin() + finite),
        kTolerance));
    EXPECT_TRUE(std::isnan(actual.back()));
    // One window over the whole input is the whole-input embedding.
    const Session::FrameWindow all[] = {{0, frames}};
    EXPECT_TRUE(
        CloseInRelativeL2(session->RunSharedTrunk(features, frames, all),
                          session->Run(features, 1, frames), 1e-6));
  }
}

TEST(CpuBackend, SharedTrunkRejectsBadWindows) {
  const ResNetWeights w = RandomWeights(SmallBasic(), 13);
  auto session = PrepareCpu(w, {})->NewSession();
  const auto features = RandomFeatures(100 * 16, 6);
  const auto code = [&](std::vector<Session::FrameWindow> windows) {
    try {
      session->RunSharedTrunk(features, 100, windows);
    } catch (const Error& error) {
      return error.code();
    }
    return ErrorCode::kInternal;
  };
  EXPECT_EQ(code({{50, 40}, {10, 40}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code({{0, 40}, {10, 20}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code({{-1, 40}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code({{100, 40}}), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code({{0, 0}}), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(session->RunSharedTrunk(features, 100, {}).empty());
}

// A backend without the shared-trunk mode refuses it as a bad request (a
// 4xx on the server), not as a device that might come back.
TEST(BackendInterface, SharedTrunkDefaultsToARefusal) {
  struct RunOnly final : Session {
    std::vector<float> Run(std::span<const float>, int, int64_t) override {
      return {};
    }
  } session;
  const std::vector<float> features(10 * 80);
  const Session::FrameWindow window[] = {{0, 10}};
  try {
    session.RunSharedTrunk(features, 10, window);
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(error.what()).find("cpu"), std::string::npos);
  }
}

TEST(CpuBackend, RejectsTilesSmallerThanTheReceptiveField) {
  backends::cpu::CpuTuning tuning;
  tuning.tile_frames = 64;
  EXPECT_THROW(PrepareCpu(RandomWeights(SmallBasic(), 1), tuning), Error);
  tuning.tile_frames = 1001;  // not a multiple of the stride
  EXPECT_THROW(PrepareCpu(RandomWeights(SmallBasic(), 1), tuning), Error);
}

TEST(CpuBackend, SplitBatchesMatchReference) {
  const ResNetWeights w = RandomWeights(SmallBasic(), 9);
  backends::cpu::CpuTuning tuning;
  tuning.max_batch_frames = 50;  // 5 items of 20 frames -> chunks of 2
  auto session = PrepareCpu(w, tuning)->NewSession();
  const auto features = RandomFeatures(5 * 20 * 16, 3);
  EXPECT_TRUE(CloseInRelativeL2(session->Run(features, 5, 20),
                                ReferenceBatch(w, features, 5, 20),
                                kTolerance));
}

TEST(CpuBackend, ReordersWeightsLazilyAndFreesUnusedLayouts) {
  const ResNetWeights w = RandomWeights(WideBasic(), 11);
  backends::cpu::CpuTuning tuning;
  tuning.max_cached_shapes = 1;
  const auto short_input = RandomFeatures(61 * 80, 12);
  const auto long_input = RandomFeatures(1500 * 80, 13);
  // What the long shape alone holds, on a model of its own.
  size_t long_only = 0;
  {
    auto model = PrepareCpu(w, tuning);
    auto session = model->NewSession();
    session->Run(long_input, 1, 1500);
    long_only = backends::cpu::PreparedWeightBytes(*model);
  }
  auto model = PrepareCpu(w, tuning);
  // Prepare compiles nothing: only the plain copies are held.
  const size_t plain = backends::cpu::PreparedWeightBytes(*model);
  EXPECT_GT(plain, 0u);
  EXPECT_GT(long_only, plain);
  {
    auto session = model->NewSession();
    const auto first = session->Run(short_input, 1, 61);
    const size_t in_use = backends::cpu::PreparedWeightBytes(*model);
    EXPECT_GT(in_use, plain);  // blocked layouts were reordered on first use
    // A second session shares the layouts instead of reordering again.
    auto other = model->NewSession();
    EXPECT_EQ(other->Run(short_input, 1, 61), first);
    EXPECT_EQ(backends::cpu::PreparedWeightBytes(*model), in_use);
    // Once no session holds the short shape (cache of one), only the long
    // shape's layouts remain.
    session->Run(long_input, 1, 1500);
    other->Run(long_input, 1, 1500);
    EXPECT_EQ(backends::cpu::PreparedWeightBytes(*model), long_only);
  }
  EXPECT_EQ(backends::cpu::PreparedWeightBytes(*model), plain);
}

TEST(CpuBackend, Bf16StaysCloseToReference) {
  if (!backends::cpu::NativeBf16Available())
    GTEST_SKIP() << "no native bf16 on this CPU";
  const ResNetWeights w = RandomWeights(WideBasic(), 12);
  BackendOptions options;
  options.num_threads = 1;
  options.precision = "bf16";
  auto session = CreateBackend("cpu", options)->Prepare(w)->NewSession();
  for (const auto& [batch, frames] :
       std::vector<std::pair<int, int64_t>>{{1, 61}, {2, 128}}) {
    SCOPED_TRACE("frames " + std::to_string(frames));
    const auto features = RandomFeatures(batch * frames * 80, frames);
    const auto actual = session->Run(features, batch, frames);
    const auto expected = ReferenceBatch(w, features, batch, frames);
    // bf16 keeps 8 significant bits (relative rounding 2^-9 = 2e-3 per
    // value); through a few layers that stays within a few 1e-2, while
    // fp32 is at 1e-6. Above 1e-3 proves bf16 really ran.
    const double error = testing::RelativeL2(actual, expected);
    EXPECT_LT(error, 5e-2);
    EXPECT_GT(error, 1e-4);
  }
  for (const std::string& layer : backends::cpu::LastLayerAlgorithms(*session))
    EXPECT_EQ(layer.find("winograd"), std::string::npos) << layer;
}

// Mixed precision: the stem and stages 1-2 in f32 (Winograd where the rule
// says so), stages 3-4 in bf16, converted where the type changes; whole,
// batched, tiled and mixed-length runs all stay close to the reference.
TEST(CpuBackend, MixedPrecisionRunsTheLastStagesInBf16) {
  if (!backends::cpu::NativeBf16Available())
    GTEST_SKIP() << "no native bf16 on this CPU";
  const ResNetWeights w = RandomWeights(WideBasic(), 13);
  BackendOptions options;
  options.num_threads = 2;
  options.precision = "mixed";
  backends::cpu::CpuTuning tiles;
  tiles.max_untiled_frames = 200;
  tiles.tile_frames = 256;
  const auto backend = backends::cpu::CreateCpuBackend(options, tiles);
  auto session = backend->Prepare(w)->NewSession();
  // bf16 rounds each value by up to 2^-9; from stage 3 on, through a few
  // layers, that stays well under bf16-everywhere's few 1e-2.
  const auto expect_close = [](std::span<const float> actual,
                               const std::vector<float>& expected) {
    const double error = testing::RelativeL2(actual, expected);
    EXPECT_LT(error, 3e-2);
    EXPECT_GT(error, 1e-5);  // bf16 really ran
  };
  for (const auto& [batch, frames] :
       std::vector<std::pair<int, int64_t>>{{1, 61}, {2, 128}, {1, 700}}) {
    SCOPED_TRACE("frames " + std::to_string(frames));
    const auto features = RandomFeatures(batch * frames * 80, frames);
    expect_close(session->Run(features, batch, frames),
                 ReferenceBatch(w, features, batch, frames));
    const auto layers = backends::cpu::LastLayerAlgorithms(*session);
    ASSERT_FALSE(layers.empty());
    for (const std::string& layer : layers) {
      if (layer.rfind("reorder", 0) == 0) continue;
      const bool deep =
          layer.rfind("stage3", 0) == 0 || layer.rfind("stage4", 0) == 0;
      EXPECT_NE(layer.find(deep ? ": direct bf16" : " f32 "), std::string::npos)
          << layer;
    }
    if (frames == 128)
      for (const std::string& layer : layers) std::cout << layer << "\n";
  }
  const MixedInputs mixed_inputs = RandomMixedInputs({61, 64, 50, 57}, 80, 70);
  const std::vector<float> rows = session->RunMixed(mixed_inputs.inputs);
  EXPECT_EQ(backends::cpu::LastMixedRuns(*session), std::vector<int>{4});
  const size_t dim = static_cast<size_t>(w.architecture.embedding_dim);
  ASSERT_EQ(rows.size(), mixed_inputs.inputs.size() * dim);
  for (size_t i = 0; i < mixed_inputs.inputs.size(); ++i) {
    SCOPED_TRACE("mixed input " + std::to_string(i));
    const Session::Input& input = mixed_inputs.inputs[i];
    expect_close(std::span<const float>(rows).subspan(i * dim, dim),
                 ReferenceEmbedding(w, input.features.data(), input.frames));
  }
}

// Mixed runs cut by the frame budget and the padding limit; inputs longer
// than the untiled limit run alone, tiled.
TEST(CpuBackend, MixedRunsRespectBudgetPaddingAndTiling) {
  const ResNetWeights w = RandomWeights(SmallBasic(), 12);
  backends::cpu::CpuTuning tuning;
  tuning.max_untiled_frames = 100;
  tuning.tile_frames = 160;
  tuning.max_mixed_batch_frames = 130;
  auto session = PrepareCpu(w, tuning, 2)->NewSession();
  const std::vector<int64_t> lengths = {101, 333, 20, 22, 30, 95, 96, 9, 31};
  const MixedInputs mixed_inputs = RandomMixedInputs(lengths, 16, 40);
  ExpectRowsMatchReference(w, session->RunMixed(mixed_inputs.inputs),
                           mixed_inputs);
  // Sorted: 9 | 20 (with 22, 2 x 32 padded frames > 1.25 x 42) | 22 30 31
  // (3 x 32 <= 1.25 x 83) | 95 | 96 (2 x 96 > 130) | 101 | 333 (tiled).
  const std::vector<int> runs = backends::cpu::LastMixedRuns(*session);
  EXPECT_EQ(runs, (std::vector<int>{1, 1, 3, 1, 1, 1, 1}));
}

class CpuAlgorithm
    : public ::testing::TestWithParam<backends::cpu::ConvAlgorithm> {};

// Masking on the layouts Winograd and direct kernels write (nChw16c...).
TEST_P(CpuAlgorithm, WideNetworkMixedLengthsMatchReference) {
  const ResNetWeights w = RandomWeights(WideBasic(), 13);
  backends::cpu::CpuTuning tuning;
  tuning.algorithm = GetParam();
  auto session = PrepareCpu(w, tuning, 2)->NewSession();
  const std::vector<int64_t> lengths = {61, 64, 50, 57, 55};
  const MixedInputs mixed_inputs = RandomMixedInputs(lengths, 80, 60);
  ExpectRowsMatchReference(w, session->RunMixed(mixed_inputs.inputs),
                           mixed_inputs);
  EXPECT_EQ(backends::cpu::LastMixedRuns(*session), std::vector<int>{5});
}

TEST_P(CpuAlgorithm, WideNetworkMatchesReference) {
  const ResNetWeights w = RandomWeights(WideBasic(), 10);
  backends::cpu::CpuTuning tuning;
  tuning.algorithm = GetParam();
  auto session = PrepareCpu(w, tuning)->NewSession();
  for (const auto& [batch, frames] :
       std::vector<std::pair<int, int64_t>>{{1, 61}, {2, 128}}) {
    SCOPED_TRACE("frames " + std::to_string(frames));
    const auto features = RandomFeatures(batch * frames * 80, frames);
    const auto actual = session->Run(features, batch, frames);
    EXPECT_TRUE(CloseInRelativeL2(
        actual, ReferenceBatch(w, features, batch, frames), kTolerance));
  }
  const auto layers = backends::cpu::LastLayerAlgorithms(*session);
  ASSERT_FALSE(layers.empty());
  int winograd = 0;
  for (const std::string& layer : layers)
    winograd += layer.find("winograd") != std::string::npos;
  if (GetParam() == backends::cpu::ConvAlgorithm::kDirect) {
    EXPECT_EQ(winograd, 0);
  }
  for (const std::string& layer : layers) std::cout << layer << "\n";
}

INSTANTIATE_TEST_SUITE_P(
    All, CpuAlgorithm,
    ::testing::Values(backends::cpu::ConvAlgorithm::kAuto,
                      backends::cpu::ConvAlgorithm::kDirect,
                      backends::cpu::ConvAlgorithm::kWinograd));

}  // namespace
}  // namespace voxprint
