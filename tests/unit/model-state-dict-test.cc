// MapStateDict on synthetic in-memory state dicts: architecture detection,
// BatchNorm folding and refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "model/state-dict.h"
#include "voxprint/error.h"

namespace voxprint::model {
namespace {

// Deterministic, distinct values so that a mix-up of tensors shows.
std::vector<float> Pattern(size_t count, float seed) {
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i)
    values[i] = std::sin(seed * 12.9898f + static_cast<float>(i) * 0.731f);
  return values;
}

// A WeSpeaker-shaped state dict of `arch`, keys prefixed with `prefix`.
HostStateDict MakeStateDict(const ResNetArchitecture& arch,
                            const std::string& prefix) {
  HostStateDict sd;
  float seed = 1;
  auto add = [&](const std::string& key, std::vector<int64_t> shape) {
    size_t count = 1;
    for (int64_t d : shape) count *= static_cast<size_t>(d);
    sd.tensors[prefix + key] = {shape, Pattern(count, seed++)};
  };
  auto add_conv = [&](const std::string& conv, const std::string& bn,
                      const ConvSpec& spec) {
    add(conv + ".weight",
        {spec.out_channels, spec.in_channels, spec.kernel, spec.kernel});
    for (const char* p : {".weight", ".bias", ".running_mean"})
      add(bn + p, {spec.out_channels});
    add(bn + ".running_var", {spec.out_channels});
    for (float& v : sd.tensors[prefix + bn + ".running_var"].values)
      v = std::abs(v) + 0.25f;
    sd.tensors[prefix + bn + ".num_batches_tracked"] = {{}, {0}};
  };
  add_conv("conv1", "bn1", StemSpec(arch));
  for (int s = 0; s < 4; ++s) {
    for (int b = 0; b < arch.blocks_per_stage[s]; ++b) {
      const std::string block =
          "layer" + std::to_string(s + 1) + "." + std::to_string(b) + ".";
      const auto specs = BlockConvSpecs(arch, s, b);
      for (size_t c = 0; c < specs.size(); ++c)
        add_conv(block + "conv" + std::to_string(c + 1),
                 block + "bn" + std::to_string(c + 1), specs[c]);
      if (auto shortcut = ShortcutSpec(arch, s, b))
        add_conv(block + "shortcut.0", block + "shortcut.1", *shortcut);
    }
  }
  add("seg_1.weight", {arch.embedding_dim, arch.PooledDim()});
  add("seg_1.bias", {arch.embedding_dim});
  return sd;
}

ResNetArchitecture Tiny(ResidualBlockKind kind = ResidualBlockKind::kBasic) {
  ResNetArchitecture arch;
  arch.block = kind;
  arch.base_channels = 2;
  arch.blocks_per_stage = {1, 2, 1, 2};
  arch.embedding_dim = 3;
  return arch;
}

void ExpectRefused(const HostStateDict& sd, const std::string& fragment) {
  try {
    MapStateDict(sd, "synthetic.pt");
    ADD_FAILURE() << "accepted; expected an error containing " << fragment;
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kModelError);
    const std::string message = error.what();
    EXPECT_EQ(message.rfind("synthetic.pt: ", 0), 0u) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

TEST(MapStateDict, DetectsBasicArchitectureWithAnyPrefix) {
  for (const std::string prefix : {"", "resnet.", "module.resnet."}) {
    SCOPED_TRACE(prefix);
    const ResNetWeights w = MapStateDict(MakeStateDict(Tiny(), prefix), "x");
    EXPECT_EQ(w.architecture.block, ResidualBlockKind::kBasic);
    EXPECT_EQ(w.architecture.blocks_per_stage,
              (std::array<int, 4>{1, 2, 1, 2}));
    EXPECT_EQ(w.architecture.base_channels, 2);
    EXPECT_EQ(w.architecture.embedding_dim, 3);
    EXPECT_EQ(w.architecture.name, "ResNet14");
  }
}

TEST(MapStateDict, DetectsBottleneckArchitecture) {
  const ResNetArchitecture arch = Tiny(ResidualBlockKind::kBottleneck);
  const ResNetWeights w = MapStateDict(MakeStateDict(arch, ""), "x");
  EXPECT_EQ(w.architecture.block, ResidualBlockKind::kBottleneck);
  EXPECT_EQ(w.architecture.name, "ResNet20");
  EXPECT_EQ(w.architecture.StageChannels(3), 64);
  ASSERT_EQ(w.stages[0][0].convs.size(), 3u);
  EXPECT_TRUE(w.stages[0][0].shortcut.has_value());
  EXPECT_EQ(w.stages[3][1].convs[2].out_channels, 64);
}

TEST(MapStateDict, FoldsBatchNormInDouble) {
  const HostStateDict sd = MakeStateDict(Tiny(), "resnet.");
  const ResNetWeights w = MapStateDict(sd, "x");
  // layer2.0.conv2 -> bn2, checked element by element.
  const std::string p = "resnet.layer2.0.";
  const auto& weight = sd.tensors.at(p + "conv2.weight").values;
  const auto& gamma = sd.tensors.at(p + "bn2.weight").values;
  const auto& beta = sd.tensors.at(p + "bn2.bias").values;
  const auto& mean = sd.tensors.at(p + "bn2.running_mean").values;
  const auto& var = sd.tensors.at(p + "bn2.running_var").values;
  const FoldedConv& conv = w.stages[1][0].convs[1];
  ASSERT_EQ(conv.weight.size(), weight.size());
  const size_t per_channel = weight.size() / 4;
  for (size_t o = 0; o < 4; ++o) {
    const double scale = double{gamma[o]} / std::sqrt(double{var[o]} + 1e-5);
    EXPECT_EQ(conv.bias[o], static_cast<float>(beta[o] - mean[o] * scale));
    for (size_t i = 0; i < per_channel; ++i)
      EXPECT_EQ(conv.weight[o * per_channel + i],
                static_cast<float>(weight[o * per_channel + i] * scale));
  }
  // The embedding layer is copied as is.
  EXPECT_EQ(w.embedding_weight, sd.tensors.at("resnet.seg_1.weight").values);
  EXPECT_EQ(w.embedding_bias, sd.tensors.at("resnet.seg_1.bias").values);
}

TEST(MapStateDict, IgnoresTrainingHeadAndOtherModules) {
  HostStateDict sd = MakeStateDict(Tiny(), "");
  sd.tensors["projection.weight"] = {{10, 3}, Pattern(30, 9)};
  sd.tensors["projection.margin"] = {{1}, {0.2f}};
  EXPECT_NO_THROW(MapStateDict(sd, "x"));
  HostStateDict prefixed = MakeStateDict(Tiny(), "resnet.");
  prefixed.tensors["other_module.weight"] = {{2}, {1, 2}};
  EXPECT_NO_THROW(MapStateDict(prefixed, "x"));
}

TEST(MapStateDict, RefusesWrongShapes) {
  HostStateDict sd = MakeStateDict(Tiny(), "resnet.");
  sd.tensors["resnet.layer2.0.conv2.weight"].shape = {4, 4, 1, 1};
  sd.tensors["resnet.layer2.0.conv2.weight"].values.resize(16);
  ExpectRefused(sd,
                "resnet.layer2.0.conv2.weight has shape [4, 4, 1, 1], "
                "expected [4, 4, 3, 3]");

  sd = MakeStateDict(Tiny(), "");
  sd.tensors["bn1.running_var"].shape = {3};
  ExpectRefused(sd, "bn1.running_var has shape [3], expected [2]");

  sd = MakeStateDict(Tiny(), "");
  sd.tensors["seg_1.weight"].shape = {3, 100};
  ExpectRefused(sd, "seg_1.weight has shape [3, 100], expected [3, 320]");

  // Values that disagree with the shape the checkpoint claims.
  sd = MakeStateDict(Tiny(), "");
  sd.tensors["layer1.0.conv1.weight"].values.pop_back();
  ExpectRefused(sd, "layer1.0.conv1.weight has 35 values, expected 36");
}

TEST(MapStateDict, RefusesMissingAndUnexpectedTensors) {
  HostStateDict sd = MakeStateDict(Tiny(), "");
  sd.tensors.erase("layer3.0.bn1.running_mean");
  ExpectRefused(sd, "lacks layer3.0.bn1.running_mean");

  sd = MakeStateDict(Tiny(), "");
  sd.tensors.erase("layer2.0.shortcut.0.weight");
  ExpectRefused(sd, "lacks layer2.0.shortcut.0.weight");

  sd = MakeStateDict(Tiny(), "");
  sd.tensors["layer1.0.shortcut.0.weight"] = {{2, 2, 1, 1}, Pattern(4, 3)};
  ExpectRefused(sd, "unexpected layer1.0.shortcut.0.weight");

  // A block beyond a gap is not silently dropped.
  sd = MakeStateDict(Tiny(), "");
  sd.tensors["layer2.5.conv1.weight"] = {{4, 4, 3, 3}, Pattern(144, 3)};
  ExpectRefused(sd, "holds layer2.5.conv1.weight");

  sd = MakeStateDict(Tiny(), "");
  sd.tensors["seg_2.weight"] = {{3, 3}, Pattern(9, 3)};
  ExpectRefused(sd, "second embedding layer");

  ExpectRefused(HostStateDict(), "no WeSpeaker ResNet weights");

  sd = MakeStateDict(Tiny(), "a.");
  for (auto& [key, tensor] : MakeStateDict(Tiny(), "b.").tensors)
    sd.tensors[key] = tensor;
  ExpectRefused(sd, "several ResNets");
}

TEST(MapStateDict, RefusesNegativeVarianceAndAbsurdSizes) {
  HostStateDict sd = MakeStateDict(Tiny(), "");
  sd.tensors["layer4.1.bn2.running_var"].values[2] = -1.0f;
  ExpectRefused(sd, "layer4.1.bn2.running_var holds -1");

  sd = MakeStateDict(Tiny(), "");
  sd.tensors["conv1.weight"].shape = {int64_t{1} << 40, 1, 3, 3};
  ExpectRefused(sd,
                "conv1.weight has shape [1099511627776, 1, 3, 3] (out of "
                "range)");
  sd = MakeStateDict(Tiny(), "");
  sd.tensors["conv1.weight"].shape = {5000, 1, 3, 3};
  ExpectRefused(sd, "base channel count 5000 is out of range");
}

}  // namespace
}  // namespace voxprint::model
