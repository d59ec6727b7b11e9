#include "vad/silero-weights.h"

#include <onnx/onnx_pb.h>

#include <bit>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <unordered_map>

#include "model/printable.h"
#include "voxprint/error.h"
#include "voxprint/vad.h"

namespace voxprint::vad {
namespace {

static_assert(std::endian::native == std::endian::little,
              "ONNX raw_data is little-endian");

using model::Printable;

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// What a Conv node that reads one of the weights must look like.
struct ConvShape {
  int64_t kernel;
  int64_t stride;
  int64_t pad;
};

class BranchReader {
 public:
  BranchReader(const onnx::GraphProto& branch, const std::string& source)
      : branch_(branch), source_(source) {
    for (const onnx::TensorProto& tensor : branch_.initializer())
      AddConstant(tensor.name(), tensor);
    for (const onnx::NodeProto& node : branch_.node()) {
      if (node.op_type() != "Constant" || node.output_size() != 1) continue;
      for (const onnx::AttributeProto& attribute : node.attribute())
        if (attribute.name() == "value" && attribute.has_t())
          AddConstant(node.output(0), attribute.t());
    }
  }

  [[noreturn]] void Fail(const std::string& what) const {
    throw Error(ErrorCode::kModelError,
                source_ + ": not Silero VAD v5 (16 kHz branch): " + what);
  }

  // The weight `name` (the PyTorch parameter name the exporter kept as the
  // tensor's name, and as the tail of its value name), checked for `shape`.
  std::vector<float> Weight(const std::string& name,
                            const std::vector<int64_t>& shape,
                            std::string* value_name = nullptr) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) Fail("weight '" + name + "' is missing");
    const onnx::TensorProto& tensor = *it->second.tensor;
    if (value_name) *value_name = it->second.value;
    const std::vector<int64_t> dims(tensor.dims().begin(), tensor.dims().end());
    if (dims != shape)
      Fail("weight '" + name + "' has shape " + ShapeText(dims) +
           ", expected " + ShapeText(shape));
    if (tensor.data_type() != onnx::TensorProto::FLOAT)
      Fail("weight '" + name + "' has data type " +
           std::to_string(tensor.data_type()) + ", expected float32");
    if (tensor.data_location() == onnx::TensorProto::EXTERNAL ||
        tensor.external_data_size() > 0)
      Fail("weight '" + name + "' uses external data");
    size_t count = 1;
    for (int64_t d : shape) count *= static_cast<size_t>(d);
    std::vector<float> values(count);
    if (tensor.has_raw_data()) {
      if (tensor.raw_data().size() != count * sizeof(float))
        Fail("weight '" + name + "' holds " +
             std::to_string(tensor.raw_data().size()) + " bytes for " +
             std::to_string(count) + " floats");
      std::memcpy(values.data(), tensor.raw_data().data(),
                  tensor.raw_data().size());
    } else {
      if (static_cast<size_t>(tensor.float_data_size()) != count)
        Fail("weight '" + name + "' holds " +
             std::to_string(tensor.float_data_size()) + " floats, expected " +
             std::to_string(count));
      std::copy(tensor.float_data().begin(), tensor.float_data().end(),
                values.begin());
    }
    for (float v : values)
      if (!std::isfinite(v)) Fail("weight '" + name + "' is not finite");
    return values;
  }

  // The Conv node (directly in the branch) whose weight input is `value`
  // must have the given kernel, stride and symmetric padding.
  void ExpectConv(const std::string& value, const std::string& weight_name,
                  const ConvShape& expected) const {
    const onnx::NodeProto* conv = nullptr;
    for (const onnx::NodeProto& node : branch_.node())
      if (node.op_type() == "Conv" && node.input_size() >= 2 &&
          node.input(1) == value)
        conv = &node;
    if (!conv) Fail("no Conv uses weight '" + weight_name + "'");
    const std::vector<int64_t> kernel = Ints(*conv, "kernel_shape");
    const std::vector<int64_t> strides = Ints(*conv, "strides");
    const std::vector<int64_t> pads = Ints(*conv, "pads");
    const std::vector<int64_t> dilations = Ints(*conv, "dilations");
    const std::vector<int64_t> group = Ints(*conv, "group");
    auto is = [](const std::vector<int64_t>& got,
                 const std::vector<int64_t>& want) {
      return got.empty() || got == want;
    };
    if (!is(kernel, {expected.kernel}) || !is(strides, {expected.stride}) ||
        !is(pads, {expected.pad, expected.pad}) || !is(dilations, {1}) ||
        !is(group, {1}) || (strides.empty() && expected.stride != 1) ||
        (pads.empty() && expected.pad != 0))
      Fail("the Conv using '" + weight_name + "' has kernel " +
           ShapeText(kernel) + ", strides " + ShapeText(strides) + ", pads " +
           ShapeText(pads) + "; expected kernel " +
           std::to_string(expected.kernel) + ", stride " +
           std::to_string(expected.stride) + ", pad " +
           std::to_string(expected.pad));
  }

  // A node of `op_type` somewhere in the branch (nested graphs included)
  // for which `matches` holds.
  bool HasNode(
      const std::string& op_type,
      const std::function<bool(const onnx::NodeProto&)>& matches) const {
    return HasNodeIn(branch_, op_type, matches, 0);
  }

  static std::vector<int64_t> Ints(const onnx::NodeProto& node,
                                   const std::string& name) {
    for (const onnx::AttributeProto& attribute : node.attribute()) {
      if (attribute.name() != name) continue;
      if (attribute.ints_size() > 0)
        return {attribute.ints().begin(), attribute.ints().end()};
      return {attribute.i()};
    }
    return {};
  }

  static std::string String(const onnx::NodeProto& node,
                            const std::string& name) {
    for (const onnx::AttributeProto& attribute : node.attribute())
      if (attribute.name() == name) return attribute.s();
    return {};
  }

 private:
  struct Named {
    const onnx::TensorProto* tensor;
    std::string value;  // the name nodes refer to it by
  };

  void AddConstant(const std::string& value, const onnx::TensorProto& tensor) {
    by_name_.emplace(value, Named{&tensor, value});
    if (!tensor.name().empty())
      by_name_.emplace(tensor.name(), Named{&tensor, value});
    // The exporter prefixes inlined values: "If_0_then_branch__Inline_0__" +
    // the parameter name.
    const size_t cut = value.rfind("__");
    if (cut != std::string::npos)
      by_name_.emplace(value.substr(cut + 2), Named{&tensor, value});
  }

  static bool HasNodeIn(
      const onnx::GraphProto& graph, const std::string& op_type,
      const std::function<bool(const onnx::NodeProto&)>& matches, int depth) {
    if (depth > 16) return false;
    for (const onnx::NodeProto& node : graph.node()) {
      if (node.op_type() == op_type && matches(node)) return true;
      for (const onnx::AttributeProto& attribute : node.attribute()) {
        if (attribute.has_g() &&
            HasNodeIn(attribute.g(), op_type, matches, depth + 1))
          return true;
        for (const onnx::GraphProto& sub : attribute.graphs())
          if (HasNodeIn(sub, op_type, matches, depth + 1)) return true;
      }
    }
    return false;
  }

  const onnx::GraphProto& branch_;
  const std::string& source_;
  std::unordered_map<std::string, Named> by_name_;
};

// Int64 scalar value of a Constant node's tensor, if it is one.
bool ConstantInt64(const onnx::NodeProto& node, int64_t* value) {
  if (node.op_type() != "Constant") return false;
  for (const onnx::AttributeProto& attribute : node.attribute()) {
    if (attribute.name() != "value" || !attribute.has_t()) continue;
    const onnx::TensorProto& t = attribute.t();
    if (t.data_type() != onnx::TensorProto::INT64) return false;
    if (t.int64_data_size() == 1) {
      *value = t.int64_data(0);
      return true;
    }
    if (t.raw_data().size() == 8) {
      std::memcpy(value, t.raw_data().data(), 8);
      return true;
    }
  }
  return false;
}

// Silero v5 chooses its 16 kHz or 8 kHz weights with If(sr == 16000): the
// then-branch of that If holds the 16 kHz network.
const onnx::GraphProto& SixteenKilohertzBranch(const onnx::GraphProto& graph,
                                               const std::string& source) {
  auto fail = [&](const std::string& what) {
    return Error(ErrorCode::kModelError,
                 source + ": not Silero VAD v5: " + what);
  };
  std::vector<std::string> inputs;
  for (const onnx::ValueInfoProto& input : graph.input())
    inputs.push_back(input.name());
  if (inputs != std::vector<std::string>{"input", "state", "sr"})
    throw fail("graph inputs are not (input, state, sr)");

  std::unordered_map<std::string, int64_t> int_constants;
  std::string sr_is_16k;
  for (const onnx::NodeProto& node : graph.node()) {
    int64_t value = 0;
    if (node.output_size() == 1 && ConstantInt64(node, &value))
      int_constants[node.output(0)] = value;
    if (node.op_type() == "Equal" && node.input_size() == 2 &&
        node.output_size() == 1) {
      for (int i = 0; i < 2; ++i) {
        auto it = int_constants.find(node.input(1 - i));
        if (node.input(i) == "sr" && it != int_constants.end() &&
            it->second == kVadSampleRateHz)
          sr_is_16k = node.output(0);
      }
    }
    if (node.op_type() == "If" && !sr_is_16k.empty() &&
        node.input_size() == 1 && node.input(0) == sr_is_16k) {
      for (const onnx::AttributeProto& attribute : node.attribute())
        if (attribute.name() == "then_branch" && attribute.has_g())
          return attribute.g();
    }
  }
  throw fail("no If choosing the 16 kHz branch on sr == 16000");
}

}  // namespace

SileroWeights ReadSileroWeights(std::span<const uint8_t> bytes,
                                const std::string& source) {
  if (bytes.empty())
    throw Error(ErrorCode::kModelError, source + ": the file is empty");
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    throw Error(ErrorCode::kModelError,
                source + ": too large for a Silero VAD model (" +
                    std::to_string(bytes.size()) + " bytes)");
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
      !model.has_graph() || model.graph().node_size() == 0)
    throw Error(
        ErrorCode::kModelError,
        source + ": not an ONNX model (Silero VAD v5 is an .onnx file)");

  BranchReader branch(SixteenKilohertzBranch(model.graph(), source), source);
  SileroWeights weights;

  std::string value;
  weights.stft_basis =
      branch.Weight("stft.forward_basis_buffer",
                    {2 * kStftBins, 1, kStftFilterLength}, &value);
  branch.ExpectConv(value, "stft.forward_basis_buffer",
                    {kStftFilterLength, kStftHop, 0});
  if (!branch.HasNode("Pad", [](const onnx::NodeProto& node) {
        return BranchReader::String(node, "mode") == "reflect";
      }))
    branch.Fail("no reflect padding before the STFT");

  struct EncoderShape {
    int in, out, stride;
  };
  constexpr EncoderShape kEncoder[] = {
      {kStftBins, 128, 1}, {128, 64, 2}, {64, 64, 2}, {64, kLstmHidden, 1}};
  for (int i = 0; i < 4; ++i) {
    const std::string prefix =
        "encoder." + std::to_string(i) + ".reparam_conv.";
    ConvLayer layer;
    layer.in_channels = kEncoder[i].in;
    layer.out_channels = kEncoder[i].out;
    layer.kernel = 3;
    layer.stride = kEncoder[i].stride;
    layer.weight = branch.Weight(
        prefix + "weight", {layer.out_channels, layer.in_channels, 3}, &value);
    branch.ExpectConv(value, prefix + "weight", {3, layer.stride, 1});
    layer.bias = branch.Weight(prefix + "bias", {layer.out_channels});
    weights.encoder.push_back(std::move(layer));
  }

  constexpr int64_t kGates = 4 * kLstmHidden;
  weights.lstm_weight_ih =
      branch.Weight("decoder.rnn.weight_ih", {kGates, kLstmHidden});
  weights.lstm_weight_hh =
      branch.Weight("decoder.rnn.weight_hh", {kGates, kLstmHidden});
  weights.lstm_bias_ih = branch.Weight("decoder.rnn.bias_ih", {kGates});
  weights.lstm_bias_hh = branch.Weight("decoder.rnn.bias_hh", {kGates});
  if (!branch.HasNode("LSTM", [](const onnx::NodeProto& node) {
        return BranchReader::Ints(node, "hidden_size") ==
               std::vector<int64_t>{kLstmHidden};
      }))
    branch.Fail("no LSTM with hidden_size 128");

  weights.head_weight =
      branch.Weight("decoder.decoder.2.weight", {1, kLstmHidden, 1}, &value);
  branch.ExpectConv(value, "decoder.decoder.2.weight", {1, 1, 0});
  weights.head_bias = branch.Weight("decoder.decoder.2.bias", {1})[0];
  if (!branch.HasNode("Sigmoid", [](const onnx::NodeProto&) { return true; }))
    branch.Fail("no Sigmoid on the output");
  return weights;
}

}  // namespace voxprint::vad
