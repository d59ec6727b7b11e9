#include "model/onnx-model.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/message.h>
#include <google/protobuf/wire_format_lite.h>
#include <onnx/onnx_pb.h>

#include <bit>
#include <climits>
#include <cstring>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "model/printable.h"
#include "voxprint/error.h"

namespace voxprint::model {
namespace {

static_assert(std::endian::native == std::endian::little,
              "ONNX raw_data is little-endian");

// No tensor holds more weights than a whole model may.
constexpr int64_t kMaxTensorElements = kMaxModelParameters;

float HalfBitsToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000) << 16;
  uint32_t exponent = (half >> 10) & 0x1f;
  uint32_t mantissa = half & 0x3ff;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    exponent = 113;
    while (!(mantissa & 0x400)) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ff) << 13);
  }
  return std::bit_cast<float>(bits);
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

class GraphReader {
 public:
  GraphReader(const onnx::GraphProto& graph, const std::string& source)
      : graph_(graph), source_(source) {}

  ResNetWeights Read() {
    Index();
    ResNetWeights weights;
    ResNetArchitecture& arch = weights.architecture;

    std::string current = FindInput(&arch.feature_dim);
    const onnx::NodeProto* stem = FollowPrelude(current);
    weights.stem = ReadConv(*stem);
    current = ExpectRelu(stem->output(0), NodeName(*stem));

    weights.stages.resize(4);
    int stage = -1;
    bool kind_known = false;
    for (int guard = 0; guard <= graph_.node_size(); ++guard) {
      ResidualBlock block;
      int stride = 1;
      if (!ReadBlock(current, &block, &stride, &current)) break;
      const ResidualBlockKind kind = block.convs.size() == 2
                                         ? ResidualBlockKind::kBasic
                                         : ResidualBlockKind::kBottleneck;
      if (kind_known && kind != arch.block)
        Fail("mixes basic and bottleneck residual blocks");
      arch.block = kind;
      kind_known = true;
      if (stage < 0 || stride != 1) ++stage;
      if (stage >= 4) Fail("has more than 4 stages of residual blocks");
      weights.stages[stage].push_back(std::move(block));
    }
    if (stage != 3)
      Fail("has " + std::to_string(stage + 1) +
           " stages of residual blocks, expected 4");

    arch.base_channels = weights.stem.out_channels;
    for (int s = 0; s < 4; ++s)
      arch.blocks_per_stage[s] = static_cast<int>(weights.stages[s].size());
    arch.name = ArchitectureName(arch.block, arch.blocks_per_stage);

    ReadEmbedding(current, &weights);
    arch.embedding_dim = static_cast<int>(weights.embedding_bias.size());
    ValidateWeights(weights, source_);
    return weights;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw Error(ErrorCode::kModelError, source_ + ": ONNX graph " + what);
  }

  static std::string NodeName(const onnx::NodeProto& node) {
    return Printable(node.op_type(), 40) + " '" + Printable(node.name()) + "'";
  }

  void Index() {
    for (const onnx::TensorProto& tensor : graph_.initializer()) {
      if (!constants_.emplace(tensor.name(), &tensor).second)
        Fail("has two initializers named '" + Printable(tensor.name()) + "'");
    }
    for (int i = 0; i < graph_.node_size(); ++i) {
      const onnx::NodeProto& node = graph_.node(i);
      // Every node the reader follows reads input(0) and writes output(0);
      // protobuf aborts the process on an index past the end, so a node
      // without them is refused here, once.
      if (node.output_size() < 1 || node.output(0).empty())
        Fail("has a node without output: " + NodeName(node));
      if (node.op_type() != "Constant" &&
          (node.input_size() < 1 || node.input(0).empty()))
        Fail("has a node without input: " + NodeName(node));
      for (const std::string& output : node.output()) {
        if (output.empty()) continue;
        if (!producers_.emplace(output, &node).second ||
            constants_.contains(output))
          Fail("defines '" + Printable(output) + "' twice");
      }
      for (const std::string& input : node.input())
        if (!input.empty()) consumers_[input].push_back(&node);
      if (node.op_type() == "Constant" && node.output_size() == 1) {
        for (const onnx::AttributeProto& attribute : node.attribute())
          if (attribute.name() == "value" && attribute.has_t())
            constants_.emplace(node.output(0), &attribute.t());
      }
    }
  }

  const std::vector<const onnx::NodeProto*>& Consumers(
      const std::string& value) const {
    static const std::vector<const onnx::NodeProto*> kNone;
    auto it = consumers_.find(value);
    return it == consumers_.end() ? kNone : it->second;
  }

  const onnx::NodeProto& SoleConsumer(const std::string& value,
                                      const std::string& what) const {
    const auto& consumers = Consumers(value);
    if (consumers.size() != 1)
      Fail("output of " + what + " feeds " + std::to_string(consumers.size()) +
           " nodes, expected 1");
    return *consumers[0];
  }

  // --- tensors ----------------------------------------------------------
  const onnx::TensorProto& Constant(const std::string& name,
                                    const std::string& what) const {
    auto it = constants_.find(name);
    if (it == constants_.end())
      Fail(what + " '" + Printable(name) + "' is missing (no initializer)");
    const onnx::TensorProto& tensor = *it->second;
    if (tensor.data_location() == onnx::TensorProto::EXTERNAL ||
        tensor.external_data_size() > 0)
      Fail(what + " '" + Printable(name) +
           "' uses external data, which is unsupported");
    return tensor;
  }

  std::vector<int64_t> Dims(const onnx::TensorProto& tensor,
                            int64_t* count) const {
    std::vector<int64_t> dims(tensor.dims().begin(), tensor.dims().end());
    int64_t n = 1;
    for (int64_t d : dims) {
      if (d < 0 || (d > 0 && n > kMaxTensorElements / d))
        Fail("tensor '" + Printable(tensor.name()) + "' has dimensions " +
             ShapeText(dims) + " (out of range)");
      n *= d;
    }
    *count = n;
    return dims;
  }

  std::vector<float> Floats(const onnx::TensorProto& tensor,
                            const std::vector<int64_t>& expected,
                            const std::string& what) const {
    int64_t count = 0;
    const std::vector<int64_t> dims = Dims(tensor, &count);
    if (dims != expected)
      Fail(what + " '" + Printable(tensor.name()) + "' has shape " +
           ShapeText(dims) + ", expected " + ShapeText(expected));
    const size_t n = static_cast<size_t>(count);
    // How many values or raw bytes the tensor must hold for n elements,
    // checked before anything is allocated for it.
    size_t element_bytes = 0;
    size_t held = 0;
    switch (tensor.data_type()) {
      case onnx::TensorProto::FLOAT:
        element_bytes = 4;
        held = static_cast<size_t>(tensor.float_data_size());
        break;
      case onnx::TensorProto::DOUBLE:
        element_bytes = 8;
        held = static_cast<size_t>(tensor.double_data_size());
        break;
      case onnx::TensorProto::FLOAT16:
      case onnx::TensorProto::BFLOAT16:
        element_bytes = 2;
        held = static_cast<size_t>(tensor.int32_data_size());
        break;
      default:
        Fail(what + " '" + Printable(tensor.name()) + "' has data type " +
             std::to_string(tensor.data_type()) +
             ", expected a floating-point type");
    }
    const std::string& raw = tensor.raw_data();
    if (tensor.has_raw_data() ? raw.size() != n * element_bytes : held != n)
      Fail(what + " '" + Printable(tensor.name()) + "' holds " +
           std::to_string(tensor.has_raw_data() ? raw.size() : held) +
           (tensor.has_raw_data() ? " bytes" : " values") + " for " +
           std::to_string(n) + " elements");
    weights_read_ += count;
    if (weights_read_ > kMaxModelParameters)
      Fail("holds more than " + std::to_string(kMaxModelParameters) +
           " weights (the limit; the largest WeSpeaker model has about 28 M)");

    std::vector<float> values(n);
    switch (tensor.data_type()) {
      case onnx::TensorProto::FLOAT:
        if (tensor.has_raw_data()) {
          std::memcpy(values.data(), raw.data(), raw.size());
        } else {
          std::copy(tensor.float_data().begin(), tensor.float_data().end(),
                    values.begin());
        }
        return values;
      case onnx::TensorProto::DOUBLE:
        for (size_t i = 0; i < n; ++i) {
          double v;
          if (tensor.has_raw_data()) {
            std::memcpy(&v, raw.data() + 8 * i, 8);
          } else {
            v = tensor.double_data(static_cast<int>(i));
          }
          values[i] = static_cast<float>(v);
        }
        return values;
      default: {  // FLOAT16, BFLOAT16
        const bool half = tensor.data_type() == onnx::TensorProto::FLOAT16;
        for (size_t i = 0; i < n; ++i) {
          uint16_t bits;
          if (tensor.has_raw_data()) {
            std::memcpy(&bits, raw.data() + 2 * i, 2);
          } else {
            bits =
                static_cast<uint16_t>(tensor.int32_data(static_cast<int>(i)));
          }
          values[i] =
              half ? HalfBitsToFloat(bits)
                   : std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
        }
        return values;
      }
    }
  }

  std::vector<int64_t> Int64s(const onnx::TensorProto& tensor) const {
    int64_t count = 0;
    Dims(tensor, &count);
    if (tensor.data_type() != onnx::TensorProto::INT64 || count > 64)
      Fail("constant '" + Printable(tensor.name()) +
           "' is not a short int64 list");
    std::vector<int64_t> values(static_cast<size_t>(count));
    if (tensor.has_raw_data()) {
      if (tensor.raw_data().size() != values.size() * 8)
        Fail("constant '" + Printable(tensor.name()) + "' has the wrong size");
      std::memcpy(values.data(), tensor.raw_data().data(),
                  tensor.raw_data().size());
    } else {
      if (tensor.int64_data_size() != count)
        Fail("constant '" + Printable(tensor.name()) + "' has the wrong size");
      std::copy(tensor.int64_data().begin(), tensor.int64_data().end(),
                values.begin());
    }
    return values;
  }

  // --- attributes -------------------------------------------------------
  static const onnx::AttributeProto* Attribute(const onnx::NodeProto& node,
                                               const std::string& name) {
    for (const onnx::AttributeProto& attribute : node.attribute())
      if (attribute.name() == name) return &attribute;
    return nullptr;
  }
  static std::optional<std::vector<int64_t>> Ints(const onnx::NodeProto& node,
                                                  const std::string& name) {
    const onnx::AttributeProto* attribute = Attribute(node, name);
    if (!attribute) return std::nullopt;
    return std::vector<int64_t>(attribute->ints().begin(),
                                attribute->ints().end());
  }
  static std::optional<int64_t> Int(const onnx::NodeProto& node,
                                    const std::string& name) {
    const onnx::AttributeProto* attribute = Attribute(node, name);
    if (!attribute) return std::nullopt;
    return attribute->i();
  }
  static std::optional<float> Float(const onnx::NodeProto& node,
                                    const std::string& name) {
    const onnx::AttributeProto* attribute = Attribute(node, name);
    if (!attribute) return std::nullopt;
    return attribute->f();
  }

  // --- graph structure --------------------------------------------------
  std::string FindInput(int* feature_dim) const {
    // WeSpeaker names it `feats`; otherwise accept a single data input
    // (IR < 4 graphs also list their initializers as inputs).
    const onnx::ValueInfoProto* input = nullptr;
    int data_inputs = 0;
    for (const onnx::ValueInfoProto& candidate : graph_.input()) {
      if (candidate.name() == "feats") {
        input = &candidate;
        data_inputs = 1;
        break;
      }
      if (constants_.contains(candidate.name())) continue;
      input = &candidate;
      ++data_inputs;
    }
    if (!input) Fail("has no input");
    if (data_inputs > 1) Fail("has several inputs and none is named 'feats'");
    const auto& shape = input->type().tensor_type().shape();
    if (shape.dim_size() != 3)
      Fail("input '" + Printable(input->name()) + "' has " +
           std::to_string(shape.dim_size()) +
           " dimensions, expected [batch, frames, mel]");
    const auto& mel = shape.dim(2);
    *feature_dim = 80;
    if (mel.has_dim_value()) {
      if (mel.dim_value() < 1 || mel.dim_value() > INT_MAX)
        Fail("input has an invalid mel dimension");
      *feature_dim = static_cast<int>(mel.dim_value());
    }
    return input->name();
  }

  // Transpose(0,2,1) + Unsqueeze(1) (or an equivalent Reshape) up to the
  // first Conv: the features become an image [B, 1, mel, frames].
  const onnx::NodeProto* FollowPrelude(std::string& value) const {
    bool transposed = false;
    bool unsqueezed = false;
    for (int step = 0; step < 16; ++step) {
      const onnx::NodeProto& node = SoleConsumer(value, "the input");
      const std::string& op = node.op_type();
      if (op == "Conv") {
        if (!transposed || !unsqueezed || node.input_size() < 1 ||
            node.input(0) != value)
          Fail(
              "does not turn the input into [batch, 1, mel, frames] "
              "before the first Conv");
        return &node;
      }
      if (node.output_size() < 1 || node.input_size() < 1 ||
          node.input(0) != value)
        Fail("has a malformed " + NodeName(node));
      if (op == "Transpose") {
        if (transposed || Ints(node, "perm") != std::vector<int64_t>{0, 2, 1})
          Fail(NodeName(node) + " is not the transpose [B,T,F] -> [B,F,T]");
        transposed = true;
      } else if (op == "Unsqueeze") {
        std::vector<int64_t> axes;
        if (auto attribute = Ints(node, "axes")) {
          axes = *attribute;
        } else if (node.input_size() == 2) {
          axes = Int64s(Constant(node.input(1), "Unsqueeze axes"));
        }
        if (unsqueezed || !transposed || axes != std::vector<int64_t>{1})
          Fail(NodeName(node) + " does not add the channel axis 1");
        unsqueezed = true;
      } else if (op == "Reshape") {
        if (node.input_size() != 2) Fail("has a malformed " + NodeName(node));
        const std::vector<int64_t> shape =
            Int64s(Constant(node.input(1), "Reshape shape"));
        if (unsqueezed || !transposed || shape.size() != 4 || shape[1] != 1)
          Fail(NodeName(node) + " does not give [batch, 1, mel, frames]");
        unsqueezed = true;
      } else if (op != "Identity") {
        Fail("has an unexpected " + NodeName(node) +
             " between the input and the first Conv");
      }
      value = node.output(0);
    }
    Fail("has no Conv near its input");
  }

  FoldedConv ReadConv(const onnx::NodeProto& node) const {
    const std::string name = NodeName(node);
    if (node.input_size() < 2 || node.input_size() > 3 ||
        node.output_size() != 1)
      Fail(name + " has " + std::to_string(node.input_size()) + " inputs");
    const onnx::TensorProto& weight = Constant(node.input(1), name + " weight");
    int64_t count = 0;
    const std::vector<int64_t> dims = Dims(weight, &count);
    if (dims.size() != 4 || dims[2] != dims[3] || dims[0] < 1 ||
        dims[0] > INT_MAX || dims[1] < 1 || dims[1] > INT_MAX || dims[2] < 1 ||
        dims[2] > 7)
      Fail(name + " weight has shape " + ShapeText(dims) +
           ", expected [out, in, k, k]");
    FoldedConv conv;
    conv.out_channels = static_cast<int>(dims[0]);
    conv.in_channels = static_cast<int>(dims[1]);
    conv.kernel = static_cast<int>(dims[2]);

    for (const onnx::AttributeProto& attribute : node.attribute()) {
      const std::string& key = attribute.name();
      if (key != "kernel_shape" && key != "strides" && key != "pads" &&
          key != "dilations" && key != "group" && key != "auto_pad")
        Fail(name + " has an unsupported attribute '" + Printable(key) + "'");
    }
    if (auto kernel = Ints(node, "kernel_shape");
        kernel && *kernel != std::vector<int64_t>{dims[2], dims[3]})
      Fail(name + " kernel_shape " + ShapeText(*kernel) +
           " does not match its weight " + ShapeText(dims));
    if (auto dilations = Ints(node, "dilations");
        dilations && *dilations != std::vector<int64_t>{1, 1})
      Fail(name + " has dilations " + ShapeText(*dilations) + ", expected 1");
    if (auto group = Int(node, "group"); group && *group != 1)
      Fail(name + " has group " + std::to_string(*group) + ", expected 1");
    if (const onnx::AttributeProto* pad = Attribute(node, "auto_pad");
        pad && pad->s() != "NOTSET")
      Fail(name + " uses auto_pad " + Printable(pad->s()) + ", unsupported");
    const std::vector<int64_t> strides =
        Ints(node, "strides").value_or(std::vector<int64_t>{1, 1});
    if (strides.size() != 2 || strides[0] != strides[1] || strides[0] < 1 ||
        strides[0] > 8)
      Fail(name + " has strides " + ShapeText(strides) +
           ", expected equal strides on both axes");
    const std::vector<int64_t> pads =
        Ints(node, "pads").value_or(std::vector<int64_t>{0, 0, 0, 0});
    if (pads.size() != 4 || pads[0] != pads[1] || pads[0] != pads[2] ||
        pads[0] != pads[3] || pads[0] < 0 || pads[0] >= dims[2])
      Fail(name + " has pads " + ShapeText(pads) +
           ", expected the same padding on all sides");
    conv.stride = static_cast<int>(strides[0]);
    conv.padding = static_cast<int>(pads[0]);

    conv.weight = Floats(weight, dims, name + " weight");
    if (node.input_size() == 3 && !node.input(2).empty()) {
      conv.bias = Floats(Constant(node.input(2), name + " bias"), {dims[0]},
                         name + " bias");
    } else {
      conv.bias.assign(conv.out_channels, 0.0f);
    }
    return conv;
  }

  std::string ExpectRelu(const std::string& value,
                         const std::string& after) const {
    const onnx::NodeProto& relu = SoleConsumer(value, after);
    if (relu.op_type() != "Relu" || relu.output_size() != 1)
      Fail(after + " is followed by " + NodeName(relu) + ", expected Relu");
    return relu.output(0);
  }

  // One residual block starting at `input`; false at the end of the stack.
  bool ReadBlock(const std::string& input, ResidualBlock* block, int* stride,
                 std::string* output) const {
    const onnx::NodeProto* main = nullptr;
    const onnx::NodeProto* shortcut = nullptr;
    const auto& consumers = Consumers(input);
    int convs = 0;
    for (const onnx::NodeProto* node : consumers) {
      if (node->op_type() != "Conv") continue;
      ++convs;
      if (node->output_size() != 1) Fail("has a malformed " + NodeName(*node));
      const auto& next = Consumers(node->output(0));
      const bool feeds_add = next.size() == 1 && next[0]->op_type() == "Add";
      if (feeds_add) {
        if (shortcut) Fail("has a residual block with two shortcuts");
        shortcut = node;
      } else {
        if (main) Fail("has a residual block with two main paths");
        main = node;
      }
    }
    if (convs == 0) return false;
    if (!main) Fail("has a residual block without a main Conv path");

    // main path: Conv (Relu Conv){1,2} then Add.
    std::vector<const onnx::NodeProto*> chain = {main};
    const onnx::NodeProto* add = nullptr;
    while (true) {
      const onnx::NodeProto& next =
          SoleConsumer(chain.back()->output(0), NodeName(*chain.back()));
      if (next.op_type() == "Add") {
        add = &next;
        break;
      }
      if (next.op_type() != "Relu" || next.output_size() != 1)
        Fail(NodeName(*chain.back()) + " is followed by " + NodeName(next) +
             ", expected Relu or Add");
      const onnx::NodeProto& conv =
          SoleConsumer(next.output(0), NodeName(next));
      if (conv.op_type() != "Conv" || conv.input(0) != next.output(0))
        Fail(NodeName(next) + " inside a residual block feeds " +
             NodeName(conv) + ", expected Conv");
      chain.push_back(&conv);
      if (chain.size() > 3)
        Fail("has a residual block with more than 3 convolutions");
    }
    if (chain.size() < 2)
      Fail("has a residual block with a single convolution");
    for (const onnx::NodeProto* conv : chain)
      block->convs.push_back(ReadConv(*conv));

    if (add->input_size() != 2 || add->output_size() != 1)
      Fail("has a malformed " + NodeName(*add));
    const std::string& main_out = chain.back()->output(0);
    const std::string& other =
        add->input(0) == main_out ? add->input(1) : add->input(0);
    if (add->input(0) != main_out && add->input(1) != main_out)
      Fail(NodeName(*add) + " does not take the main path");
    if (shortcut) {
      if (other != shortcut->output(0))
        Fail(NodeName(*add) + " does not join the shortcut " +
             NodeName(*shortcut));
      block->shortcut = ReadConv(*shortcut);
    } else if (other != input) {
      Fail(NodeName(*add) + " joins neither the block input nor a shortcut");
    }
    // The stride sits on the 3x3 conv (conv1 basic, conv2 bottleneck).
    *stride = block->convs[chain.size() == 2 ? 0 : 1].stride;
    *output = ExpectRelu(add->output(0), NodeName(*add));
    return true;
  }

  // True when `target` is an ancestor of `value` (bounded breadth-first).
  bool DependsOn(const std::string& value, const std::string& target) const {
    std::vector<std::string> pending = {value};
    std::unordered_set<std::string> seen;
    while (!pending.empty()) {
      const std::string name = pending.back();
      pending.pop_back();
      if (name == target) return true;
      if (!seen.insert(name).second) continue;
      auto it = producers_.find(name);
      if (it == producers_.end()) continue;
      for (const std::string& input : it->second->input())
        pending.push_back(input);
    }
    return false;
  }

  void ReadEmbedding(const std::string& pooled_from, ResNetWeights* weights) {
    const ResNetArchitecture& arch = weights->architecture;
    ValidateArchitecture(
        [&] {
          ResNetArchitecture probe = arch;
          probe.embedding_dim = 1;
          return probe;
        }(),
        source_);
    const int64_t pooled = arch.PooledDim();
    const onnx::NodeProto* layer = nullptr;
    for (const onnx::NodeProto& node : graph_.node()) {
      if (node.op_type() != "Gemm" && node.op_type() != "MatMul") continue;
      if (layer) Fail("has several Gemm/MatMul nodes");
      layer = &node;
    }
    if (!layer) Fail("has no Gemm (embedding layer)");
    const std::string name = NodeName(*layer);
    if (layer->input_size() < 2 || layer->output_size() != 1 ||
        !DependsOn(layer->input(0), pooled_from))
      Fail(name + " does not read the pooled ResNet output");
    const onnx::TensorProto& weight =
        Constant(layer->input(1), name + " weight");
    int64_t count = 0;
    const std::vector<int64_t> dims = Dims(weight, &count);
    if (dims.size() != 2) Fail(name + " weight is not a matrix");

    bool transposed = false;  // true: weight stored [pooled, embedding]
    std::string bias_name;
    std::string output = layer->output(0);
    if (layer->op_type() == "Gemm") {
      for (const onnx::AttributeProto& attribute : layer->attribute()) {
        const std::string& key = attribute.name();
        if (key != "alpha" && key != "beta" && key != "transA" &&
            key != "transB")
          Fail(name + " has an unsupported attribute '" + Printable(key) + "'");
      }
      if (Float(*layer, "alpha").value_or(1.0f) != 1.0f ||
          Float(*layer, "beta").value_or(1.0f) != 1.0f ||
          Int(*layer, "transA").value_or(0) != 0)
        Fail(name + " has alpha/beta/transA other than 1/1/0");
      transposed = Int(*layer, "transB").value_or(0) == 0;
      if (layer->input_size() == 3) bias_name = layer->input(2);
    } else {
      transposed = true;
      const onnx::NodeProto& add = SoleConsumer(output, name);
      if (add.op_type() != "Add" || add.input_size() != 2 ||
          add.output_size() != 1)
        Fail(name + " is not followed by the bias Add");
      bias_name = add.input(0) == output ? add.input(1) : add.input(0);
      output = add.output(0);
    }
    const int64_t embedding = transposed ? dims[1] : dims[0];
    const int64_t inputs = transposed ? dims[0] : dims[1];
    if (inputs != pooled || embedding < 1 || embedding > 65536)
      Fail(name + " weight has shape " + ShapeText(dims) + ", expected " +
           (transposed ? "[" + std::to_string(pooled) + ", embedding]"
                       : "[embedding, " + std::to_string(pooled) + "]") +
           " for " + arch.name);
    std::vector<float> matrix = Floats(weight, dims, name + " weight");
    if (transposed) {
      std::vector<float> rows(matrix.size());
      for (int64_t p = 0; p < pooled; ++p)
        for (int64_t e = 0; e < embedding; ++e)
          rows[e * pooled + p] = matrix[p * embedding + e];
      matrix.swap(rows);
    }
    weights->embedding_weight = std::move(matrix);
    if (bias_name.empty()) {
      weights->embedding_bias.assign(static_cast<size_t>(embedding), 0.0f);
    } else {
      weights->embedding_bias =
          BiasVector(bias_name, embedding, name + " bias");
    }

    // What follows the layer: at most constant subtractions (WeSpeaker's
    // mean_vec), folded into the bias, up to a graph output.
    for (int step = 0; step < 8; ++step) {
      bool is_output = false;
      for (const onnx::ValueInfoProto& out : graph_.output())
        is_output = is_output || out.name() == output;
      const auto& next = Consumers(output);
      if (next.empty()) {
        if (!is_output) Fail(name + " result is not a graph output");
        return;
      }
      if (next.size() != 1 || is_output)
        Fail(name + " result is used by " + std::to_string(next.size()) +
             " nodes");
      const onnx::NodeProto& node = *next[0];
      if (node.op_type() == "Identity") {
        output = node.output(0);
        continue;
      }
      if (node.op_type() != "Sub" || node.input_size() != 2 ||
          node.input(0) != output || node.output_size() != 1)
        Fail("applies an unsupported " + NodeName(node) +
             " after the embedding layer");
      const std::vector<float> offset =
          BiasVector(node.input(1), embedding, NodeName(node) + " constant");
      for (int64_t e = 0; e < embedding; ++e)
        weights->embedding_bias[e] -= offset[e];
      output = node.output(0);
    }
    Fail("has too many nodes after the embedding layer");
  }

  // A [E] or [1, E] constant.
  std::vector<float> BiasVector(const std::string& name, int64_t embedding,
                                const std::string& what) const {
    const onnx::TensorProto& tensor = Constant(name, what);
    int64_t count = 0;
    std::vector<int64_t> dims = Dims(tensor, &count);
    if (dims.size() == 2 && dims[0] == 1) dims.erase(dims.begin());
    if (dims != std::vector<int64_t>{embedding})
      Fail(what + " '" + Printable(name) + "' has shape " + ShapeText(dims) +
           ", expected [" + std::to_string(embedding) + "]");
    return Floats(
        tensor,
        std::vector<int64_t>(tensor.dims().begin(), tensor.dims().end()), what);
  }

  const onnx::GraphProto& graph_;
  const std::string& source_;
  std::unordered_map<std::string, const onnx::TensorProto*> constants_;
  std::unordered_map<std::string, const onnx::NodeProto*> producers_;
  std::unordered_map<std::string, std::vector<const onnx::NodeProto*>>
      consumers_;
  // Weights read so far: at most kMaxModelParameters in all, checked before
  // each tensor is converted.
  mutable int64_t weights_read_ = 0;
};

// --- the protobuf parser's memory, bounded before it runs ------------------
//
// protobuf makes an object of every message it reads: an empty NodeProto
// takes 2 bytes of the file and ~200 of memory, so 10 MB of them took 750 MB
// (and unknown fields, repeated scalars and strings amplify too). The scan
// below walks the wire format with the schema and adds up what parsing will
// allocate, refusing the file before protobuf sees it.

enum class ScanResult { kOk, kMalformed, kTooLarge };

class ParseCostScan {
 public:
  explicit ParseCostScan(uint64_t budget) : budget_(budget) {}

  ScanResult Run(std::span<const uint8_t> bytes) {
    google::protobuf::io::CodedInputStream input(
        bytes.data(), static_cast<int>(bytes.size()));
    input.SetTotalBytesLimit(INT_MAX);
    const ScanResult result =
        Message(input, onnx::ModelProto::descriptor(), /*depth=*/0);
    if (result == ScanResult::kOk &&
        input.CurrentPosition() != static_cast<int>(bytes.size()))
      return ScanResult::kMalformed;
    return result;
  }

  uint64_t cost() const { return cost_; }

 private:
  // protobuf's own nesting limit.
  static constexpr int kMaxDepth = 100;
  // What a value that is not a message costs beyond its bytes, counting
  // the copy a growing array makes: a repeated number (8 bytes), a string
  // object, an unknown field's entry (16 bytes, plus a string for bytes).
  static constexpr uint64_t kNumberCost = 24;
  static constexpr uint64_t kStringCost = 48;
  static constexpr uint64_t kUnknownCost = 48;

  static uint64_t MessageCost(const google::protobuf::Descriptor* type) {
    const google::protobuf::Message* prototype =
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(
            type);
    return (prototype ? prototype->SpaceUsedLong() : 256) + 16;
  }

  // Packed repeated numbers of `length` bytes: fixed-width ones take their
  // bytes, varints (at least a byte each) up to 8 bytes per byte.
  static uint64_t PackedCost(const google::protobuf::FieldDescriptor& field,
                             uint64_t length) {
    using google::protobuf::FieldDescriptor;
    switch (field.type()) {
      case FieldDescriptor::TYPE_FLOAT:
      case FieldDescriptor::TYPE_DOUBLE:
      case FieldDescriptor::TYPE_FIXED32:
      case FieldDescriptor::TYPE_FIXED64:
      case FieldDescriptor::TYPE_SFIXED32:
      case FieldDescriptor::TYPE_SFIXED64:
        return length;
      default:
        return length *
               static_cast<uint64_t>(
                   field.cpp_type() == FieldDescriptor::CPPTYPE_INT64 ||
                           field.cpp_type() == FieldDescriptor::CPPTYPE_UINT64
                       ? 8
                       : 4);
    }
  }

  bool Add(uint64_t cost) {
    cost_ += cost;
    return cost_ <= budget_;
  }

  // One message of `type`, up to the input's current limit.
  ScanResult Message(google::protobuf::io::CodedInputStream& input,
                     const google::protobuf::Descriptor* type, int depth) {
    using google::protobuf::FieldDescriptor;
    using google::protobuf::internal::WireFormatLite;
    if (depth > kMaxDepth) return ScanResult::kMalformed;
    if (!Add(MessageCost(type))) return ScanResult::kTooLarge;
    while (true) {
      const uint32_t tag = input.ReadTag();
      if (tag == 0)
        return input.BytesUntilLimit() == 0 ? ScanResult::kOk
                                            : ScanResult::kMalformed;
      const FieldDescriptor* field =
          type->FindFieldByNumber(static_cast<int>(tag >> 3));
      switch (WireFormatLite::GetTagWireType(tag)) {
        case WireFormatLite::WIRETYPE_VARINT: {
          uint64_t value;
          if (!input.ReadVarint64(&value)) return ScanResult::kMalformed;
          break;
        }
        case WireFormatLite::WIRETYPE_FIXED64:
          if (!input.Skip(8)) return ScanResult::kMalformed;
          break;
        case WireFormatLite::WIRETYPE_FIXED32:
          if (!input.Skip(4)) return ScanResult::kMalformed;
          break;
        case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
          uint32_t length;
          if (!input.ReadVarint32(&length) ||
              length > static_cast<uint32_t>(input.BytesUntilTotalBytesLimit()))
            return ScanResult::kMalformed;
          if (field && field->type() == FieldDescriptor::TYPE_MESSAGE) {
            const auto limit = input.PushLimit(static_cast<int>(length));
            const ScanResult inner =
                Message(input, field->message_type(), depth + 1);
            if (inner != ScanResult::kOk) return inner;
            input.PopLimit(limit);
            continue;
          }
          const uint64_t cost =
              field && field->is_packable()
                  ? PackedCost(*field, length)
                  : (field ? 0 : kUnknownCost) + kStringCost + length;
          if (!Add(cost)) return ScanResult::kTooLarge;
          if (!input.Skip(static_cast<int>(length)))
            return ScanResult::kMalformed;
          continue;
        }
        default:  // groups: never in ONNX
          return ScanResult::kMalformed;
      }
      if (!Add(field ? kNumberCost : kUnknownCost))
        return ScanResult::kTooLarge;
    }
  }

  const uint64_t budget_;
  uint64_t cost_ = 0;
};

}  // namespace

std::optional<ResNetWeights> ReadOnnxWeights(std::span<const uint8_t> bytes,
                                             const std::string& source) {
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    throw Error(ErrorCode::kModelError,
                source + ": ONNX files over 2 GB are not supported");
  // Four times the file and 64 MiB: real models store their weights as
  // raw bytes or packed floats (the parse costs about the file's size), or
  // float16 as int32 varints (2 to 3 bytes each, 4 in memory).
  const uint64_t budget = 4 * uint64_t{bytes.size()} + (uint64_t{64} << 20);
  ParseCostScan scan(budget);
  switch (scan.Run(bytes)) {
    case ScanResult::kMalformed:
      return std::nullopt;  // what protobuf would refuse: not ONNX
    case ScanResult::kTooLarge:
      throw Error(ErrorCode::kModelError,
                  source + ": ONNX protobuf would take more than " +
                      std::to_string(budget) +
                      " bytes of memory to parse (a file of " +
                      std::to_string(bytes.size()) +
                      " bytes: far too many messages, fields or values)");
    case ScanResult::kOk:
      break;
  }
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
      !model.has_graph() || model.graph().node_size() == 0)
    return std::nullopt;
  return GraphReader(model.graph(), source).Read();
}

}  // namespace voxprint::model
