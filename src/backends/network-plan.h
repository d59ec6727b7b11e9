// Backend-free execution plan of a WeSpeaker ResNet trunk.
//
// BuildNetworkPlan turns model::ResNetWeights into the ordered list of
// convolutions every backend runs, on a few virtual activation buffers whose
// lifetimes are already resolved (residual additions happen in place in the
// destination buffer). It also knows the conv arithmetic along both axes and
// the exact receptive field along time, which time tiling needs.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/resnet-weights.h"

namespace voxprint::backends {

// One convolution (BatchNorm folded) in execution order.
struct ConvStep {
  std::string name;  // "stem", "stage2.block0.conv1", "stage2.block0.shortcut"
  int stage = 0;     // 0: the stem; 1..4: the residual stage it belongs to
  // Valid only while the weights given to BuildNetworkPlan are alive.
  const model::FoldedConv* weights = nullptr;
  int in_channels = 0;
  int out_channels = 0;
  int kernel = 3;
  int stride = 1;
  int padding = 1;
  int src_buffer = 0;  // virtual activation buffer read
  int dst_buffer = 0;  // virtual activation buffer written
  // dst already holds the residual: dst = conv(src) + bias + dst.
  bool accumulate = false;
  bool relu = false;  // applied last (after the residual addition)

  // Output length along one axis for an input of `length` (conv arithmetic);
  // 0 when the input is too short for the kernel.
  int64_t OutputLength(int64_t length) const {
    const int64_t span = length + 2 * padding - kernel;
    return span < 0 ? 0 : span / stride + 1;
  }
};

struct NetworkPlan {
  std::vector<ConvStep> steps;
  int num_buffers = 0;    // virtual buffers 0 .. num_buffers-1
  int input_buffer = 0;   // the stem's source: [batch, 1, bins, frames]
  int output_buffer = 0;  // the trunk output after the last step
  int feature_dim = 0;    // bins of the input
  int output_channels = 0;
  int output_rows = 0;  // frequency rows of the trunk output (80 -> 10)
  int pooled_dim = 0;   // 2 * output_channels * output_rows
  int embedding_dim = 0;
  // Total stride along time (8 for ResNet34).
  int time_stride = 1;
  // Trunk output frame j depends exactly on input frames
  // [time_stride*j - receptive_left, time_stride*j + receptive_right]
  // (before clipping to the input; outside it the network sees zero padding).
  int64_t receptive_left = 0;
  int64_t receptive_right = 0;

  // Trunk output frames for `frames` input frames (0: input too short).
  int64_t OutputFrames(int64_t frames) const;
  // Throws ErrorCode::kInvalidArgument unless `features` holds
  // [batch, frames, feature_dim] values with batch, frames >= 1.
  void CheckFeatures(std::span<const float> features, int batch,
                     int64_t frames) const;
};

// Checks every shape (channel chaining, weight sizes, residual shapes match
// for all lengths, embedding matrix size) and throws ErrorCode::kModelError
// naming the layer when something does not fit.
NetworkPlan BuildNetworkPlan(const model::ResNetWeights& weights);

// Session::RunMixed on any backend: inputs of different lengths batched in
// runs of similar length, each padded to one width; after every convolution
// the columns past each input's own output length are zeroed, so the next
// one reads zeros there, as the zero padding of a run on the input alone.
struct MixedRunLimits {
  int64_t max_batch_frames = 6000;  // padded frames of one run
  double max_padding = 0.25;        // padding, as a share of a run's frames
  int64_t max_batched_frames = 0;   // longer inputs run alone
};
// Padded width of a run whose longest input has `frames` frames: rounded up
// so that runs of nearby lengths share a compiled shape.
int64_t MixedWidth(int64_t frames);
// Input indices cut into runs: sorted by length (stable), each run grown
// while it keeps within `limits`; a run of one runs alone.
std::vector<std::vector<size_t>> PlanMixedRuns(std::span<const int64_t> frames,
                                               const MixedRunLimits& limits);

}  // namespace voxprint::backends
