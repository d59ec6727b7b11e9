// Loading the kit's three model files and the stub models of tests/data.
#include "model/model-file.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/reference-kit.h"
#include "voxprint/error.h"

namespace voxprint::model {
namespace {

namespace fs = std::filesystem;
using ::voxprint::testing::CloseInMaxAbs;
using ::voxprint::testing::LoadNpy;
using ::voxprint::testing::ReferenceDir;

fs::path StubDir() { return fs::path(VOXPRINT_SOURCE_DIR) / "tests" / "data"; }

// Trainable parameters of pytorch_model.bin, measured with
//   /usr/bin/python3: sum(v.numel() for k, v in ckpt['state_dict'].items()
//                         if 'running' not in k and 'num_batches' not in k)
// (with pyannote's classes stubbed in sys.modules to unpickle the checkpoint).
constexpr int64_t kResNet34ParameterCount = 6'634'336;

// One named tensor of the folded network, in ResNetWeights order.
struct NamedValues {
  std::string name;
  const std::vector<float>* values;
};

std::vector<NamedValues> Tensors(const ResNetWeights& w) {
  std::vector<NamedValues> out;
  auto add_conv = [&](const std::string& name, const FoldedConv& conv) {
    out.push_back({name + ".weight", &conv.weight});
    out.push_back({name + ".bias", &conv.bias});
  };
  add_conv("conv1", w.stem);
  for (size_t s = 0; s < w.stages.size(); ++s) {
    for (size_t b = 0; b < w.stages[s].size(); ++b) {
      const std::string block =
          "layer" + std::to_string(s + 1) + "." + std::to_string(b);
      const ResidualBlock& residual = w.stages[s][b];
      for (size_t c = 0; c < residual.convs.size(); ++c)
        add_conv(block + ".conv" + std::to_string(c + 1), residual.convs[c]);
      if (residual.shortcut) add_conv(block + ".shortcut", *residual.shortcut);
    }
  }
  out.push_back({"seg_1.weight", &w.embedding_weight});
  out.push_back({"seg_1.bias", &w.embedding_bias});
  return out;
}

std::vector<float> Flatten(const ResNetWeights& w) {
  std::vector<float> all;
  for (const NamedValues& t : Tensors(w))
    all.insert(all.end(), t.values->begin(), t.values->end());
  return all;
}

// Largest per-tensor max|a - b| / max|b| over the network; also checks that
// both have the same layers and geometry.
double MaxLayerRelativeDifference(const ResNetWeights& a,
                                  const ResNetWeights& b,
                                  std::string* worst_layer) {
  const std::vector<NamedValues> ta = Tensors(a);
  const std::vector<NamedValues> tb = Tensors(b);
  EXPECT_EQ(ta.size(), tb.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(ta.size(), tb.size()); ++i) {
    EXPECT_EQ(ta[i].name, tb[i].name);
    EXPECT_EQ(ta[i].values->size(), tb[i].values->size()) << ta[i].name;
    if (ta[i].values->size() != tb[i].values->size()) return INFINITY;
    double max_diff = 0, scale = 0;
    for (size_t j = 0; j < ta[i].values->size(); ++j) {
      max_diff = std::max<double>(
          max_diff, std::abs((*ta[i].values)[j] - (*tb[i].values)[j]));
      scale = std::max<double>(scale, std::abs((*tb[i].values)[j]));
    }
    const double relative = scale > 0 ? max_diff / scale : max_diff;
    if (relative > worst) {
      worst = relative;
      *worst_layer = ta[i].name;
    }
  }
  return worst;
}

void ExpectSameGeometry(const ResNetWeights& a, const ResNetWeights& b) {
  ASSERT_EQ(a.stages.size(), b.stages.size());
  for (size_t s = 0; s < a.stages.size(); ++s) {
    ASSERT_EQ(a.stages[s].size(), b.stages[s].size());
    for (size_t k = 0; k < a.stages[s].size(); ++k) {
      const ResidualBlock& x = a.stages[s][k];
      const ResidualBlock& y = b.stages[s][k];
      ASSERT_EQ(x.convs.size(), y.convs.size());
      ASSERT_EQ(x.shortcut.has_value(), y.shortcut.has_value());
      for (size_t c = 0; c < x.convs.size(); ++c) {
        EXPECT_EQ(x.convs[c].stride, y.convs[c].stride);
        EXPECT_EQ(x.convs[c].padding, y.convs[c].padding);
        EXPECT_EQ(x.convs[c].kernel, y.convs[c].kernel);
      }
    }
  }
}

struct Timed {
  LoadedModel model;
  double ms;
};

Timed LoadTimed(const fs::path& path) {
  const auto start = std::chrono::steady_clock::now();
  LoadedModel model = LoadModelFile(path.string());
  const auto stop = std::chrono::steady_clock::now();
  return {std::move(model),
          std::chrono::duration<double, std::milli>(stop - start).count()};
}

class KitModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!::voxprint::testing::HasReferenceKit()) return;
    const fs::path models = ReferenceDir() / "models";
    for (const char* name :
         {"pytorch_model.bin", "avg_model.pt", "voxceleb_resnet34_LM.onnx"}) {
      Timed timed = LoadTimed(models / name);
      std::cout << "[ load     ] " << name << ": " << timed.ms << " ms\n";
      loaded_->emplace_back(std::move(timed.model));
    }
  }
  static void TearDownTestSuite() { loaded_->clear(); }

  void SetUp() override {
    VOXPRINT_REQUIRE_REFERENCE_KIT();
    ASSERT_EQ(loaded_->size(), 3u);
  }
  const LoadedModel& pyannote() { return (*loaded_)[0]; }
  const LoadedModel& wespeaker() { return (*loaded_)[1]; }
  const LoadedModel& onnx() { return (*loaded_)[2]; }

  static inline std::vector<LoadedModel>* loaded_ =
      new std::vector<LoadedModel>();
};

TEST_F(KitModels, FormatsAreDetectedFromContent) {
  EXPECT_EQ(pyannote().info.format, ModelFormat::kPyannoteCheckpoint);
  EXPECT_EQ(wespeaker().info.format, ModelFormat::kWespeakerCheckpoint);
  EXPECT_EQ(onnx().info.format, ModelFormat::kOnnx);
  EXPECT_STREQ(ModelFormatName(onnx().info.format), "ONNX");
}

// torch.save zips keep a CRC-32 per entry, which loading verifies; ONNX
// keeps none (a flipped weight bit loads unnoticed).
TEST_F(KitModels, OnlyZipCheckpointsHaveAChecksumOfTheirOwn) {
  EXPECT_TRUE(pyannote().info.format_has_checksum);
  EXPECT_TRUE(wespeaker().info.format_has_checksum);
  EXPECT_FALSE(onnx().info.format_has_checksum);
}

TEST_F(KitModels, Sha256AndSizeMatchTheManifest) {
  std::ifstream in(ReferenceDir() / "manifest.json");
  const nlohmann::json manifest = nlohmann::json::parse(in);
  for (const LoadedModel* model : {&pyannote(), &wespeaker(), &onnx()}) {
    const std::string name = fs::path(model->info.path).filename().string();
    EXPECT_EQ(model->info.sha256,
              manifest.at("models").at(name).at("sha256").get<std::string>())
        << name;
    EXPECT_EQ(model->info.file_size_bytes,
              static_cast<int64_t>(fs::file_size(model->info.path)));
  }
}

TEST_F(KitModels, ChecksumIsSkippedWhenNotWanted) {
  LoadOptions options;
  options.checksum = false;
  const LoadedModel model = LoadModelFile(pyannote().info.path, options);
  EXPECT_TRUE(model.info.sha256.empty());
  EXPECT_EQ(model.info.file_size_bytes, pyannote().info.file_size_bytes);
  EXPECT_TRUE(Flatten(model.weights) == Flatten(pyannote().weights));
}

TEST_F(KitModels, ArchitectureIsResNet34) {
  for (const LoadedModel* model : {&pyannote(), &wespeaker(), &onnx()}) {
    const ResNetArchitecture& arch = model->info.architecture;
    SCOPED_TRACE(model->info.path);
    EXPECT_EQ(arch.name, "ResNet34");
    EXPECT_EQ(arch.block, ResidualBlockKind::kBasic);
    EXPECT_EQ(arch.blocks_per_stage, (std::array<int, 4>{3, 4, 6, 3}));
    EXPECT_EQ(arch.base_channels, 32);
    EXPECT_EQ(arch.feature_dim, 80);
    EXPECT_EQ(arch.embedding_dim, 256);
    EXPECT_EQ(arch.OutputFrequencyRows(), 10);
    EXPECT_EQ(arch.PooledDim(), 5120);
    EXPECT_EQ(arch.ParameterCount(), kResNet34ParameterCount);
    EXPECT_EQ(model->weights.architecture.name, arch.name);
    EXPECT_NO_THROW(ValidateWeights(model->weights, "kit"));
  }
}

TEST_F(KitModels, BothCheckpointsFoldToIdenticalWeights) {
  const std::vector<float> a = Flatten(pyannote().weights);
  const std::vector<float> b = Flatten(wespeaker().weights);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_TRUE(a == b) << "pytorch_model.bin and avg_model.pt differ";
  // Folding must have changed something: the stem has no bias of its own.
  EXPECT_NE(pyannote().weights.stem.bias[0], 0.0f);
}

TEST_F(KitModels, OnnxWeightsMatchTheFoldedCheckpoint) {
  ExpectSameGeometry(onnx().weights, pyannote().weights);
  std::string worst_layer;
  const double worst = MaxLayerRelativeDifference(
      onnx().weights, pyannote().weights, &worst_layer);
  std::cout << "[ measured ] ONNX vs pytorch_model.bin: max per-layer "
               "max|diff|/max|w| = "
            << worst << " (" << worst_layer << ")\n";
  // The exporter folds BatchNorm in float32, we fold in double.
  EXPECT_LT(worst, 1e-5) << worst_layer;
  const std::vector<float> a = Flatten(onnx().weights);
  const std::vector<float> b = Flatten(pyannote().weights);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_LT(::voxprint::testing::RelativeL2(a, b), 1e-6);
}

// --- stub models ---------------------------------------------------------

TEST(StubModels, BasicCheckpointsFoldLikeTorch) {
  const std::vector<float> expected =
      LoadNpy(StubDir() / "stub-basic.folded.npy").values;
  for (const char* name : {"stub-basic-pyannote.bin", "stub-basic-wespeaker.pt",
                           "stub-basic-mixed.pt"}) {
    SCOPED_TRACE(name);
    const LoadedModel model = LoadModelFile((StubDir() / name).string());
    const ResNetArchitecture& arch = model.info.architecture;
    EXPECT_EQ(arch.name, "ResNet12");
    EXPECT_EQ(arch.blocks_per_stage, (std::array<int, 4>{1, 2, 1, 1}));
    EXPECT_EQ(arch.base_channels, 2);
    EXPECT_EQ(arch.embedding_dim, 8);
    EXPECT_EQ(arch.PooledDim(), 2 * 16 * 10);
    // Python folds in float64 exactly as we do (see make_stub_models.py);
    // the mixed file holds float64/float16/bfloat16 and strided tensors of
    // values that those types represent exactly.
    EXPECT_TRUE(CloseInMaxAbs(Flatten(model.weights), expected, 0.0));
  }
  EXPECT_EQ(LoadModelFile((StubDir() / "stub-basic-pyannote.bin").string())
                .info.format,
            ModelFormat::kPyannoteCheckpoint);
  EXPECT_EQ(
      LoadModelFile((StubDir() / "stub-basic-mixed.pt").string()).info.format,
      ModelFormat::kWespeakerCheckpoint);
}

TEST(StubModels, BasicOnnxFoldsMeanVecIntoTheBias) {
  const LoadedModel onnx =
      LoadModelFile((StubDir() / "stub-basic.onnx").string());
  const LoadedModel torch =
      LoadModelFile((StubDir() / "stub-basic-wespeaker.pt").string());
  EXPECT_EQ(onnx.info.format, ModelFormat::kOnnx);
  EXPECT_EQ(onnx.info.architecture.name, "ResNet12");
  ExpectSameGeometry(onnx.weights, torch.weights);

  // The export subtracts a random mean_vec after seg_1.
  const std::vector<float> mean_vec =
      LoadNpy(StubDir() / "stub-basic.mean-vec.npy").values;
  ASSERT_EQ(mean_vec.size(), 8u);
  std::vector<float> expected_bias = torch.weights.embedding_bias;
  for (size_t i = 0; i < expected_bias.size(); ++i)
    expected_bias[i] -= mean_vec[i];
  EXPECT_TRUE(CloseInMaxAbs(onnx.weights.embedding_bias, expected_bias, 1e-6));

  ResNetWeights without_mean = onnx.weights;
  without_mean.embedding_bias = torch.weights.embedding_bias;
  std::string worst_layer;
  EXPECT_LT(
      MaxLayerRelativeDifference(without_mean, torch.weights, &worst_layer),
      1e-5)
      << worst_layer;
}

TEST(StubModels, BottleneckCheckpointAndOnnxMapToBottleneckResNet) {
  const LoadedModel torch =
      LoadModelFile((StubDir() / "stub-bottleneck.pt").string());
  const LoadedModel onnx =
      LoadModelFile((StubDir() / "stub-bottleneck.onnx").string());
  for (const LoadedModel* model : {&torch, &onnx}) {
    const ResNetArchitecture& arch = model->info.architecture;
    SCOPED_TRACE(model->info.path);
    EXPECT_EQ(arch.block, ResidualBlockKind::kBottleneck);
    EXPECT_EQ(arch.name, "ResNet14");
    EXPECT_EQ(arch.blocks_per_stage, (std::array<int, 4>{1, 1, 1, 1}));
    EXPECT_EQ(arch.base_channels, 1);
    EXPECT_EQ(arch.embedding_dim, 4);
    EXPECT_EQ(arch.StageChannels(3), 32);
    ASSERT_EQ(model->weights.stages[0][0].convs.size(), 3u);
    // Expansion 4: layer1.0 needs a projection from 1 to 4 channels.
    ASSERT_TRUE(model->weights.stages[0][0].shortcut.has_value());
    EXPECT_EQ(model->weights.stages[0][0].shortcut->stride, 1);
    EXPECT_EQ(model->weights.stages[1][0].convs[1].stride, 2);
  }
  EXPECT_TRUE(CloseInMaxAbs(
      Flatten(torch.weights),
      LoadNpy(StubDir() / "stub-bottleneck.folded.npy").values, 0.0));
  std::string worst_layer;
  EXPECT_LT(
      MaxLayerRelativeDifference(onnx.weights, torch.weights, &worst_layer),
      1e-5)
      << worst_layer;
  // Measured with /usr/bin/python3 on the stub's state dict (trainable
  // parameters, running statistics excluded): see make_stub_models.py.
  EXPECT_EQ(torch.info.architecture.ParameterCount(), 4'825);
}

TEST(StubModels, LoadModelBytesUsesTheGivenName) {
  const std::vector<uint8_t> bytes =
      ::voxprint::testing::ReadFileBytes(StubDir() / "stub-basic-wespeaker.pt");
  const LoadedModel model = LoadModelBytes(bytes, "upload.pt");
  EXPECT_EQ(model.info.path, "upload.pt");
  EXPECT_EQ(model.info.file_size_bytes, static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(model.info.sha256.size(), 64u);
}

TEST(StubModels, MissingFileIsAnIoError) {
  try {
    LoadModelFile("/nonexistent/model.bin");
    FAIL() << "no exception";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kIoError);
    EXPECT_NE(std::string(error.what()).find("/nonexistent/model.bin"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace voxprint::model
