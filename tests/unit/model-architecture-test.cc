// ResNetArchitecture arithmetic, layer geometry and ValidateWeights.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "model/resnet-weights.h"
#include "voxprint/error.h"
#include "voxprint/model.h"

namespace voxprint::model {
namespace {

ResNetArchitecture Bottleneck(std::array<int, 4> blocks) {
  ResNetArchitecture arch;
  arch.block = ResidualBlockKind::kBottleneck;
  arch.blocks_per_stage = blocks;
  arch.name = ArchitectureName(arch.block, blocks);
  return arch;
}

TEST(ModelArchitecture, FormatNames) {
  EXPECT_STREQ(ModelFormatName(ModelFormat::kPyannoteCheckpoint),
               "pyannote checkpoint");
  EXPECT_STREQ(ModelFormatName(ModelFormat::kWespeakerCheckpoint),
               "WeSpeaker checkpoint");
  EXPECT_STREQ(ModelFormatName(ModelFormat::kOnnx), "ONNX");
}

TEST(ModelArchitecture, FrequencyRowsFollowTheThreeStrideTwoStages) {
  ResNetArchitecture arch;
  EXPECT_EQ(arch.OutputFrequencyRows(), 10);  // 80 -> 40 -> 20 -> 10
  arch.feature_dim = 81;
  EXPECT_EQ(arch.OutputFrequencyRows(), 11);  // 81 -> 41 -> 21 -> 11
  arch.feature_dim = 64;
  EXPECT_EQ(arch.OutputFrequencyRows(), 8);
  arch.feature_dim = 1;
  EXPECT_EQ(arch.OutputFrequencyRows(), 1);
}

TEST(ModelArchitecture, PooledDimOfResNet34AndBottlenecks) {
  EXPECT_EQ(ResNetArchitecture().PooledDim(), 2 * 256 * 10);
  EXPECT_EQ(Bottleneck({3, 8, 36, 3}).PooledDim(), 2 * 1024 * 10);
}

// Counts measured with /usr/bin/python3 torch on WeSpeaker-shaped ResNets
// (tests/support/make_stub_models.py's ResNet class, 32 channels, 256-dim
// embedding): trainable parameters of the state dict, running statistics
// and num_batches_tracked excluded. ResNet34's equals pytorch_model.bin's.
TEST(ModelArchitecture, ParameterCountsMatchTorch) {
  EXPECT_EQ(ResNetArchitecture().ParameterCount(), 6'634'336);
  EXPECT_EQ(Bottleneck({3, 8, 36, 3}).ParameterCount(), 19'814'880);
  EXPECT_EQ(Bottleneck({6, 16, 48, 3}).ParameterCount(), 23'792'224);
  EXPECT_EQ(Bottleneck({10, 20, 64, 3}).ParameterCount(), 28'626'016);
}

TEST(ModelArchitecture, NamesCountTheLayers) {
  EXPECT_EQ(ArchitectureName(ResidualBlockKind::kBasic, {3, 4, 6, 3}),
            "ResNet34");
  EXPECT_EQ(ArchitectureName(ResidualBlockKind::kBasic, {2, 2, 2, 2}),
            "ResNet18");
  EXPECT_EQ(Bottleneck({3, 8, 36, 3}).name, "ResNet152");
  EXPECT_EQ(Bottleneck({6, 16, 48, 3}).name, "ResNet221");
  EXPECT_EQ(Bottleneck({10, 20, 64, 3}).name, "ResNet293");
}

TEST(ModelArchitecture, BasicBlockGeometry) {
  const ResNetArchitecture arch;
  const ConvSpec stem = StemSpec(arch);
  EXPECT_EQ(stem.out_channels, 32);
  EXPECT_EQ(stem.in_channels, 1);
  // layer1: identity shortcuts, stride 1.
  auto convs = BlockConvSpecs(arch, 0, 0);
  ASSERT_EQ(convs.size(), 2u);
  EXPECT_EQ(convs[0].stride, 1);
  EXPECT_FALSE(ShortcutSpec(arch, 0, 0).has_value());
  // layer2.0: stride 2 on conv1, 1x1 stride-2 projection 32 -> 64.
  convs = BlockConvSpecs(arch, 1, 0);
  EXPECT_EQ(convs[0].stride, 2);
  EXPECT_EQ(convs[0].in_channels, 32);
  EXPECT_EQ(convs[0].out_channels, 64);
  EXPECT_EQ(convs[1].stride, 1);
  const auto shortcut = ShortcutSpec(arch, 1, 0);
  ASSERT_TRUE(shortcut.has_value());
  EXPECT_EQ(shortcut->kernel, 1);
  EXPECT_EQ(shortcut->padding, 0);
  EXPECT_EQ(shortcut->stride, 2);
  EXPECT_FALSE(ShortcutSpec(arch, 1, 1).has_value());
}

TEST(ModelArchitecture, BottleneckGeometry) {
  const ResNetArchitecture arch = Bottleneck({3, 8, 36, 3});
  auto convs = BlockConvSpecs(arch, 0, 0);
  ASSERT_EQ(convs.size(), 3u);
  EXPECT_EQ(convs[0].kernel, 1);
  EXPECT_EQ(convs[1].kernel, 3);
  EXPECT_EQ(convs[2].kernel, 1);
  EXPECT_EQ(convs[2].out_channels, 128);
  // Expansion changes the channels in layer1.0: projection at stride 1.
  auto shortcut = ShortcutSpec(arch, 0, 0);
  ASSERT_TRUE(shortcut.has_value());
  EXPECT_EQ(shortcut->stride, 1);
  EXPECT_EQ(shortcut->in_channels, 32);
  EXPECT_EQ(shortcut->out_channels, 128);
  EXPECT_FALSE(ShortcutSpec(arch, 0, 1).has_value());
  // layer2.0: the stride sits on the 3x3 conv.
  convs = BlockConvSpecs(arch, 1, 0);
  EXPECT_EQ(convs[0].stride, 1);
  EXPECT_EQ(convs[1].stride, 2);
  EXPECT_EQ(convs[0].in_channels, 128);
}

// A zero-valued network of the given architecture.
ResNetWeights ZeroWeights(const ResNetArchitecture& arch) {
  auto make = [](const ConvSpec& spec) {
    FoldedConv conv;
    conv.out_channels = spec.out_channels;
    conv.in_channels = spec.in_channels;
    conv.kernel = spec.kernel;
    conv.stride = spec.stride;
    conv.padding = spec.padding;
    conv.weight.assign(static_cast<size_t>(spec.out_channels) *
                           spec.in_channels * spec.kernel * spec.kernel,
                       0.0f);
    conv.bias.assign(spec.out_channels, 0.0f);
    return conv;
  };
  ResNetWeights w;
  w.architecture = arch;
  w.stem = make(StemSpec(arch));
  w.stages.resize(4);
  for (int s = 0; s < 4; ++s) {
    for (int b = 0; b < arch.blocks_per_stage[s]; ++b) {
      ResidualBlock block;
      for (const ConvSpec& spec : BlockConvSpecs(arch, s, b))
        block.convs.push_back(make(spec));
      if (auto shortcut = ShortcutSpec(arch, s, b))
        block.shortcut = make(*shortcut);
      w.stages[s].push_back(std::move(block));
    }
  }
  w.embedding_weight.assign(
      static_cast<size_t>(arch.embedding_dim) * arch.PooledDim(), 0.0f);
  w.embedding_bias.assign(arch.embedding_dim, 0.0f);
  return w;
}

ResNetArchitecture Tiny() {
  ResNetArchitecture arch;
  arch.base_channels = 2;
  arch.blocks_per_stage = {1, 2, 1, 1};
  arch.embedding_dim = 3;
  return arch;
}

void ExpectInvalid(const ResNetWeights& w, const std::string& fragment) {
  try {
    ValidateWeights(w, "tiny.pt");
    ADD_FAILURE() << "accepted; expected an error containing " << fragment;
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kModelError);
    const std::string message = error.what();
    EXPECT_EQ(message.rfind("tiny.pt: ", 0), 0u) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

TEST(ValidateWeights, AcceptsConsistentWeights) {
  EXPECT_NO_THROW(ValidateWeights(ZeroWeights(Tiny()), "tiny.pt"));
  EXPECT_NO_THROW(
      ValidateWeights(ZeroWeights(Bottleneck({1, 1, 2, 1})), "b.pt"));
}

TEST(ValidateWeights, RefusesEveryKindOfMismatch) {
  const ResNetWeights good = ZeroWeights(Tiny());
  {
    ResNetWeights w = good;
    w.stages[1][0].convs[0].stride = 1;
    ExpectInvalid(w, "layer2.0.conv1");
  }
  {
    ResNetWeights w = good;
    w.stages[1][0].shortcut.reset();
    ExpectInvalid(w, "layer2.0 lacks its projection shortcut");
  }
  {
    ResNetWeights w = good;
    w.stages[0][0].shortcut = w.stages[1][0].shortcut;
    ExpectInvalid(w, "layer1.0 has an unexpected projection shortcut");
  }
  {
    ResNetWeights w = good;
    w.stages[2][0].convs[1].weight.pop_back();
    ExpectInvalid(w, "layer3.0.conv2 weight has");
  }
  {
    ResNetWeights w = good;
    w.stem.bias.push_back(0);
    ExpectInvalid(w, "conv1 (stem) bias");
  }
  {
    ResNetWeights w = good;
    w.stages[3].pop_back();
    ExpectInvalid(w, "layer4 has 0 blocks");
  }
  {
    ResNetWeights w = good;
    w.embedding_weight.resize(5);
    ExpectInvalid(w, "seg_1");
  }
  {
    ResNetWeights w = good;
    w.stages[1][1].convs[1].weight[3] = std::numeric_limits<float>::quiet_NaN();
    ExpectInvalid(w,
                  "layer2.1.conv2 weight holds a non-finite value at index 3");
  }
  {
    ResNetWeights w = good;
    w.embedding_bias[1] = std::numeric_limits<float>::infinity();
    ExpectInvalid(w, "non-finite");
  }
  {
    ResNetWeights w = good;
    w.architecture.base_channels = 1 << 20;
    ExpectInvalid(w, "base channel count");
  }
  {
    ResNetWeights w = good;
    w.stages.pop_back();
    ExpectInvalid(w, "stages, expected 4");
  }
}

}  // namespace
}  // namespace voxprint::model
