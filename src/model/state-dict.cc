#include "model/state-dict.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <atomic>
#include <exception>
#include <functional>
#include <iterator>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <string_view>

#include "model/printable.h"
#include "voxprint/error.h"

namespace voxprint::model {

std::vector<std::string> HostStateDict::Keys() const {
  std::vector<std::string> keys;
  for (const auto& [key, tensor] : tensors) keys.push_back(key);
  return keys;
}

std::optional<std::vector<int64_t>> HostStateDict::Shape(
    const std::string& key) const {
  auto it = tensors.find(key);
  if (it == tensors.end()) return std::nullopt;
  return it->second.shape;
}

std::vector<float> HostStateDict::Values(const std::string& key) const {
  auto it = tensors.find(key);
  if (it == tensors.end())
    throw Error(ErrorCode::kModelError, "no tensor " + Printable(key));
  return it->second.values;
}

namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// Runs every task, on up to kMaxLoadThreads threads (the caller's included).
// When tasks throw, rethrows the exception of the first one in list order
// (as a sequential run would), skipping the tasks after it.
constexpr unsigned kMaxLoadThreads = 4;
void RunConcurrently(const std::vector<std::function<void()>>& tasks) {
  std::atomic<size_t> next{0};
  std::mutex failure_mutex;
  size_t failed_index = tasks.size();
  std::exception_ptr failure;
  const auto work = [&] {
    for (size_t i = next++; i < tasks.size(); i = next++) {
      {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (i > failed_index) return;
      }
      try {
        tasks[i]();
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (i < failed_index) {
          failed_index = i;
          failure = std::current_exception();
        }
      }
    }
  };
  const size_t cores = std::clamp<size_t>(std::thread::hardware_concurrency(),
                                          1, kMaxLoadThreads);
  std::vector<std::thread> threads;
  try {
    while (threads.size() + 1 < std::min(cores, tasks.size()))
      threads.emplace_back(work);
  } catch (const std::system_error&) {
    // No more threads to be had: the ones started (and this one) do it all.
  }
  work();
  for (std::thread& thread : threads) thread.join();
  if (failure) std::rethrow_exception(failure);
}

class Mapper {
 public:
  Mapper(const StateDictSource& state_dict, const std::string& source)
      : sd_(state_dict), source_(source) {}

  ResNetWeights Map() {
    FindPrefix();
    ResNetWeights weights;
    ResNetArchitecture& arch = weights.architecture;
    arch = DetectArchitecture();
    arch_ = arch;

    // The structure first (cheap: shapes only), then the tensors: reading,
    // checking and folding them is most of a model's load time, which
    // start-up latency feels, so they are read on several cores.
    std::vector<std::function<void()>> reads;
    reads.push_back([&] {
      weights.stem = FoldConv("conv1", "bn1", StemSpec(arch));
    });
    weights.stages.resize(4);
    for (int stage = 0; stage < 4; ++stage) {
      weights.stages[stage].resize(arch.blocks_per_stage[stage]);
      for (int b = 0; b < arch.blocks_per_stage[stage]; ++b) {
        const std::string block =
            "layer" + std::to_string(stage + 1) + "." + std::to_string(b) + ".";
        ResidualBlock& residual = weights.stages[stage][b];
        const std::vector<ConvSpec> specs = BlockConvSpecs(arch, stage, b);
        residual.convs.resize(specs.size());
        for (size_t c = 0; c < specs.size(); ++c) {
          const std::string n = std::to_string(c + 1);
          reads.push_back([this, &residual, block, n, c, spec = specs[c]] {
            residual.convs[c] = FoldConv(block + "conv" + n, block + "bn" + n,
                                         spec);
          });
        }
        const std::optional<ConvSpec> shortcut = ShortcutSpec(arch, stage, b);
        const bool has_shortcut = Has(block + "shortcut.0.weight");
        if (shortcut && !has_shortcut)
          Fail("lacks " + Shown(block + "shortcut.0.weight") +
               " (the block changes shape and needs a projection shortcut)");
        if (!shortcut && has_shortcut)
          Fail("has an unexpected " + Shown(block + "shortcut.0.weight"));
        if (shortcut)
          reads.push_back([this, &residual, block, spec = *shortcut] {
            residual.shortcut =
                FoldConv(block + "shortcut.0", block + "shortcut.1", spec);
          });
      }
    }
    reads.push_back([&] {
      weights.embedding_weight =
          Read("seg_1.weight", {arch.embedding_dim, arch.PooledDim()});
      weights.embedding_bias = Read("seg_1.bias", {arch.embedding_dim});
    });
    RunConcurrently(reads);

    CheckAllKeysUsed();
    ValidateWeights(weights, source_);
    return weights;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw Error(ErrorCode::kModelError, source_ + ": state dict " + what);
  }

  std::string Key(const std::string& name) const { return prefix_ + name; }
  // Key(name) as error messages show it.
  std::string Shown(const std::string& name) const {
    return Printable(Key(name));
  }
  bool Has(const std::string& name) const {
    return sd_.Shape(Key(name)).has_value();
  }

  // "resnet." for pyannote, "" for WeSpeaker: whatever precedes the one
  // layer1.0.conv1.weight.
  void FindPrefix() {
    constexpr std::string_view kAnchor = "layer1.0.conv1.weight";
    std::set<std::string> prefixes;
    for (const std::string& key : sd_.Keys()) {
      if (!key.ends_with(kAnchor)) continue;
      std::string prefix = key.substr(0, key.size() - kAnchor.size());
      if (prefix.empty() || prefix.back() == '.') prefixes.insert(prefix);
    }
    if (prefixes.empty())
      Fail("holds no WeSpeaker ResNet weights (no layer1.0.conv1.weight)");
    if (prefixes.size() > 1)
      Fail("holds several ResNets ('" + Printable(*prefixes.begin()) + "', '" +
           Printable(*std::next(prefixes.begin())) + "')");
    prefix_ = *prefixes.begin();
  }

  std::vector<int64_t> RequireShape(const std::string& name, size_t rank) {
    const auto shape = sd_.Shape(Key(name));
    if (!shape) Fail("lacks " + Shown(name));
    if (shape->size() != rank)
      Fail(Shown(name) + " has shape " + ShapeText(*shape) + ", expected " +
           std::to_string(rank) + " dimensions");
    return *shape;
  }

  ResNetArchitecture DetectArchitecture() {
    ResNetArchitecture arch;
    arch.block = Has("layer1.0.conv3.weight") ? ResidualBlockKind::kBottleneck
                                              : ResidualBlockKind::kBasic;
    for (int stage = 0; stage < 4; ++stage) {
      int count = 0;
      while (count <= 1024 && Has("layer" + std::to_string(stage + 1) + "." +
                                  std::to_string(count) + ".conv1.weight"))
        ++count;
      arch.blocks_per_stage[stage] = count;
    }
    const std::vector<int64_t> stem = RequireShape("conv1.weight", 4);
    const std::vector<int64_t> seg = RequireShape("seg_1.weight", 2);
    if (Has("seg_2.weight"))
      Fail("has a second embedding layer (" + Shown("seg_2.weight") +
           "), which WeSpeaker's inference models do not use: unsupported");
    // Range-check before narrowing; ValidateArchitecture has the tighter
    // limits.
    for (const auto& [name, shape] :
         {std::pair{"conv1.weight", stem}, std::pair{"seg_1.weight", seg}}) {
      if (shape[0] < 1 || shape[0] > (1 << 20))
        Fail(Shown(name) + " has shape " + ShapeText(shape) +
             " (out of range)");
    }
    arch.base_channels = static_cast<int>(stem[0]);
    arch.embedding_dim = static_cast<int>(seg[0]);
    arch.name = ArchitectureName(arch.block, arch.blocks_per_stage);
    ValidateArchitecture(arch, source_);
    if (seg[1] != arch.PooledDim())
      Fail(Shown("seg_1.weight") + " has shape " + ShapeText(seg) +
           ", expected [" + std::to_string(arch.embedding_dim) + ", " +
           std::to_string(arch.PooledDim()) + "] for " + arch.name + " with " +
           std::to_string(arch.base_channels) + " channels and " +
           std::to_string(arch.feature_dim) + " mel bins");
    return arch;
  }

  std::vector<float> Read(const std::string& name,
                          const std::vector<int64_t>& expected) {
    const std::string key = Key(name);
    const auto shape = sd_.Shape(key);
    if (!shape) Fail("lacks " + Shown(name));
    if (*shape != expected)
      Fail(Shown(name) + " has shape " + ShapeText(*shape) + ", expected " +
           ShapeText(expected));
    std::vector<float> values = sd_.Values(key);
    size_t count = 1;
    for (int64_t d : expected) count *= static_cast<size_t>(d);
    if (values.size() != count)
      Fail(Shown(name) + " has " + std::to_string(values.size()) +
           " values, expected " + std::to_string(count));
    std::lock_guard<std::mutex> lock(used_mutex_);
    used_.insert(key);
    return values;
  }

  FoldedConv FoldConv(const std::string& conv, const std::string& bn,
                      const ConvSpec& spec) {
    FoldedConv out;
    out.out_channels = spec.out_channels;
    out.in_channels = spec.in_channels;
    out.kernel = spec.kernel;
    out.stride = spec.stride;
    out.padding = spec.padding;
    const std::vector<int64_t> channels = {spec.out_channels};
    out.weight = Read(conv + ".weight", {spec.out_channels, spec.in_channels,
                                         spec.kernel, spec.kernel});
    const std::vector<float> gamma = Read(bn + ".weight", channels);
    const std::vector<float> beta = Read(bn + ".bias", channels);
    const std::vector<float> mean = Read(bn + ".running_mean", channels);
    const std::vector<float> var = Read(bn + ".running_var", channels);

    const size_t per_channel = out.weight.size() / spec.out_channels;
    out.bias.resize(spec.out_channels);
    for (int o = 0; o < spec.out_channels; ++o) {
      const double denominator =
          static_cast<double>(var[o]) + kBatchNormEpsilon;
      if (!(denominator > 0))
        Fail(Shown(bn + ".running_var") + " holds " + std::to_string(var[o]) +
             " (a variance must not be negative)");
      const double scale =
          static_cast<double>(gamma[o]) / std::sqrt(denominator);
      float* w = out.weight.data() + o * per_channel;
      for (size_t i = 0; i < per_channel; ++i)
        w[i] = static_cast<float>(static_cast<double>(w[i]) * scale);
      out.bias[o] = static_cast<float>(static_cast<double>(beta[o]) -
                                       static_cast<double>(mean[o]) * scale);
    }
    return out;
  }

  void CheckAllKeysUsed() {
    for (const std::string& key : sd_.Keys()) {
      if (!key.starts_with(prefix_) || used_.contains(key)) continue;
      const std::string_view name =
          std::string_view(key).substr(prefix_.size());
      if (name.ends_with("num_batches_tracked") ||
          name.starts_with("projection."))
        continue;
      const std::array<int, 4>& blocks = arch_.blocks_per_stage;
      Fail("holds " + Printable(key) + ", which the detected " + arch_.name +
           " (blocks " + std::to_string(blocks[0]) + "," +
           std::to_string(blocks[1]) + "," + std::to_string(blocks[2]) + "," +
           std::to_string(blocks[3]) + ") does not have");
    }
  }

  const StateDictSource& sd_;
  const std::string& source_;
  std::string prefix_;
  ResNetArchitecture arch_;
  std::mutex used_mutex_;  // Read() runs on several threads
  std::set<std::string> used_;
};

}  // namespace

ResNetWeights MapStateDict(const StateDictSource& state_dict,
                           const std::string& source) {
  return Mapper(state_dict, source).Map();
}

}  // namespace voxprint::model
