#include "network-plan.h"

#include <algorithm>
#include <array>
#include <string>

#include "voxprint/error.h"

namespace voxprint::backends {
namespace {

[[noreturn]] void Fail(const std::string& layer, const std::string& reason) {
  throw Error(ErrorCode::kModelError,
              "model weights: " + layer + ": " + reason);
}

// Lowest free virtual buffer; the set only grows as needed.
class BufferPool {
 public:
  int Acquire() {
    for (size_t i = 0; i < in_use_.size(); ++i) {
      if (!in_use_[i]) {
        in_use_[i] = true;
        return static_cast<int>(i);
      }
    }
    in_use_.push_back(true);
    return static_cast<int>(in_use_.size() - 1);
  }
  void Release(int buffer) { in_use_[buffer] = false; }
  int size() const { return static_cast<int>(in_use_.size()); }

 private:
  std::vector<bool> in_use_;
};

// Lengths used to check that residual branches agree for every input length
// (conv arithmetic is periodic in the total stride, 64 covers it).
constexpr int kCheckedLengths = 64;

// What a virtual buffer holds while the plan is built.
struct BufferState {
  int channels = 0;
  int64_t rows = 0;
  std::array<int64_t, kCheckedLengths> frames{};  // for inputs 1..64 frames
  int64_t time_stride = 1;
  int64_t left = 0;
  int64_t right = 0;
};

}  // namespace

int64_t NetworkPlan::OutputFrames(int64_t frames) const {
  std::vector<int64_t> length(num_buffers, 0);
  length[input_buffer] = frames;
  for (const ConvStep& step : steps) {
    const int64_t out = step.OutputLength(length[step.src_buffer]);
    if (out <= 0) return 0;
    length[step.dst_buffer] = out;
  }
  return length[output_buffer];
}

NetworkPlan BuildNetworkPlan(const model::ResNetWeights& weights) {
  const model::ResNetWeights& w = weights;
  NetworkPlan plan;
  plan.feature_dim = w.architecture.feature_dim;
  plan.embedding_dim = w.architecture.embedding_dim;
  if (plan.feature_dim <= 0 || plan.embedding_dim <= 0)
    Fail("architecture", "feature_dim and embedding_dim must be positive");

  BufferPool pool;
  std::vector<BufferState> state;
  auto acquire = [&] {
    const int buffer = pool.Acquire();
    if (static_cast<int>(state.size()) <= buffer) state.resize(buffer + 1);
    return buffer;
  };

  // Appends one conv reading `src` into `dst` and updates what dst holds.
  auto add_conv = [&](const std::string& name, int stage,
                      const model::FoldedConv& conv, int src, int dst,
                      bool accumulate, bool relu) {
    if (conv.kernel < 1 || conv.stride < 1 || conv.padding < 0 ||
        conv.padding >= conv.kernel)
      Fail(name, "unsupported kernel " + std::to_string(conv.kernel) +
                     " / stride " + std::to_string(conv.stride) +
                     " / padding " + std::to_string(conv.padding));
    if (conv.out_channels <= 0 || conv.in_channels <= 0)
      Fail(name, "channel counts must be positive");
    const BufferState in = state[src];
    if (conv.in_channels != in.channels)
      Fail(name, "expects " + std::to_string(conv.in_channels) +
                     " input channels, gets " + std::to_string(in.channels));
    const size_t weight_count = static_cast<size_t>(conv.out_channels) *
                                conv.in_channels * conv.kernel * conv.kernel;
    if (conv.weight.size() != weight_count)
      Fail(name, "weight has " + std::to_string(conv.weight.size()) +
                     " values, expected " + std::to_string(weight_count));
    if (conv.bias.size() != static_cast<size_t>(conv.out_channels))
      Fail(name, "bias has " + std::to_string(conv.bias.size()) +
                     " values, expected " + std::to_string(conv.out_channels));

    ConvStep step;
    step.name = name;
    step.stage = stage;
    step.weights = &conv;
    step.in_channels = conv.in_channels;
    step.out_channels = conv.out_channels;
    step.kernel = conv.kernel;
    step.stride = conv.stride;
    step.padding = conv.padding;
    step.src_buffer = src;
    step.dst_buffer = dst;
    step.accumulate = accumulate;
    step.relu = relu;

    BufferState out;
    out.channels = conv.out_channels;
    out.rows = step.OutputLength(in.rows);
    if (out.rows <= 0)
      Fail(name, "the frequency axis is too small (" + std::to_string(in.rows) +
                     " rows)");
    for (int i = 0; i < kCheckedLengths; ++i)
      out.frames[i] = step.OutputLength(in.frames[i]);
    out.time_stride = in.time_stride * conv.stride;
    out.left = in.time_stride * conv.padding + in.left;
    out.right = in.time_stride * (conv.kernel - 1 - conv.padding) + in.right;
    if (accumulate) {
      const BufferState& residual = state[dst];
      if (residual.channels != out.channels || residual.rows != out.rows ||
          residual.frames != out.frames ||
          residual.time_stride != out.time_stride)
        Fail(name, "residual branch shape differs from the block output");
      out.left = std::max(out.left, residual.left);
      out.right = std::max(out.right, residual.right);
    }
    state[dst] = out;
    plan.steps.push_back(std::move(step));
  };

  // Stem.
  const int input = acquire();
  plan.input_buffer = input;
  state[input].channels = 1;
  state[input].rows = plan.feature_dim;
  for (int i = 0; i < kCheckedLengths; ++i) state[input].frames[i] = i + 1;
  int current = acquire();
  add_conv("stem", 0, w.stem, input, current, false, true);
  pool.Release(input);

  if (w.stages.size() != 4)
    Fail("stages", "expected 4 stages, got " + std::to_string(w.stages.size()));
  for (size_t s = 0; s < w.stages.size(); ++s) {
    if (w.stages[s].empty())
      Fail("stage" + std::to_string(s + 1), "has no blocks");
    for (size_t b = 0; b < w.stages[s].size(); ++b) {
      const model::ResidualBlock& block = w.stages[s][b];
      const int stage = static_cast<int>(s) + 1;
      const std::string prefix =
          "stage" + std::to_string(stage) + ".block" + std::to_string(b);
      if (block.convs.size() < 2)
        Fail(prefix, "needs at least 2 convolutions, has " +
                         std::to_string(block.convs.size()));
      // The residual ends up in `output`; the main branch accumulates into it.
      int output = current;
      if (block.shortcut) {
        output = acquire();
        add_conv(prefix + ".shortcut", stage, *block.shortcut, current, output,
                 false, false);
      }
      int src = current;
      for (size_t c = 0; c + 1 < block.convs.size(); ++c) {
        const int dst = acquire();
        add_conv(prefix + ".conv" + std::to_string(c + 1), stage,
                 block.convs[c], src, dst, false, true);
        if (src != output) pool.Release(src);
        src = dst;
      }
      add_conv(prefix + ".conv" + std::to_string(block.convs.size()), stage,
               block.convs.back(), src, output, true, true);
      pool.Release(src);
      current = output;
    }
  }

  const BufferState& out = state[current];
  plan.output_buffer = current;
  plan.num_buffers = pool.size();
  plan.output_channels = out.channels;
  plan.output_rows = static_cast<int>(out.rows);
  plan.pooled_dim = 2 * out.channels * plan.output_rows;
  plan.time_stride = static_cast<int>(out.time_stride);
  plan.receptive_left = out.left;
  plan.receptive_right = out.right;

  const size_t embedding_count =
      static_cast<size_t>(plan.embedding_dim) * plan.pooled_dim;
  if (w.embedding_weight.size() != embedding_count)
    Fail("embedding",
         "weight has " + std::to_string(w.embedding_weight.size()) +
             " values, expected " + std::to_string(plan.embedding_dim) + " x " +
             std::to_string(plan.pooled_dim));
  if (w.embedding_bias.size() != static_cast<size_t>(plan.embedding_dim))
    Fail("embedding", "bias has " + std::to_string(w.embedding_bias.size()) +
                          " values, expected " +
                          std::to_string(plan.embedding_dim));
  return plan;
}

void NetworkPlan::CheckFeatures(std::span<const float> features, int batch,
                                int64_t frames) const {
  if (batch < 1 || frames < 1)
    throw Error(ErrorCode::kInvalidArgument,
                "features: batch " + std::to_string(batch) + " and frames " +
                    std::to_string(frames) + " must be positive");
  const uint64_t per_item = static_cast<uint64_t>(feature_dim);
  if (features.size() / per_item / static_cast<uint64_t>(batch) !=
          static_cast<uint64_t>(frames) ||
      features.size() % (per_item * batch) != 0)
    throw Error(ErrorCode::kInvalidArgument,
                "features: " + std::to_string(features.size()) +
                    " values do not match [" + std::to_string(batch) + ", " +
                    std::to_string(frames) + ", " +
                    std::to_string(feature_dim) + "]");
}

int64_t MixedWidth(int64_t frames) {
  constexpr int64_t kQuantum = 16;
  return (frames + kQuantum - 1) / kQuantum * kQuantum;
}

std::vector<std::vector<size_t>> PlanMixedRuns(std::span<const int64_t> frames,
                                               const MixedRunLimits& limits) {
  std::vector<size_t> order(frames.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return frames[a] < frames[b]; });
  std::vector<std::vector<size_t>> runs;
  for (size_t first = 0; first < order.size();) {
    size_t last = first + 1;
    int64_t total = frames[order[first]];
    while (last < order.size() &&
           frames[order[first]] <= limits.max_batched_frames) {
      const int64_t next = frames[order[last]];
      const int64_t padded =
          static_cast<int64_t>(last - first + 1) * MixedWidth(next);
      if (next > limits.max_batched_frames ||
          padded > limits.max_batch_frames ||
          padded >
              (1.0 + limits.max_padding) * static_cast<double>(total + next))
        break;
      total += next;
      ++last;
    }
    runs.emplace_back(order.begin() + first, order.begin() + last);
    first = last;
  }
  return runs;
}

}  // namespace voxprint::backends
