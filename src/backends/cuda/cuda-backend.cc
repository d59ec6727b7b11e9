// The CUDA backend: cuDNN convolutions (fp32, FMA math: no TF32, so results
// stay within float rounding of the CPU backend; TF32 tensor cores only with
// precision "tf32", an opt-in) and a few kernels for the input transpose,
// bias + ReLU, statistics pooling and the embedding layer.
//
// It runs the same NetworkPlan as the CPU backend; the ResNet graph is not
// restated here. cuDNN's legacy convolution API (deprecated in cuDNN 9 but
// complete) keeps the code short; every status is checked and turned into a
// voxprint::Error naming the call.
#include "backends/cuda/cuda-backend.h"

#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "backends/cuda/cuda-kernels.h"
#include "backends/network-plan.h"
#include "model/resnet-weights.h"
#include "voxprint/error.h"

namespace voxprint::backends::cuda {
namespace {

// Batches are split so that batch * frames per run stays below this (bounds
// the activation memory of a session: ~10 KB per frame for ResNet34's stem).
constexpr int64_t kMaxBatchFrames = 65536;
// Grid y dimension of the pooling/linear kernels is the batch (<= 65535).
constexpr int kMaxChunkBatch = 4096;
// cuDNN workspace allowed per convolution.
constexpr size_t kMaxWorkspaceBytes = size_t{256} << 20;
// Compiled shapes each session keeps (least recently used dropped); a shape
// is descriptors and algorithm choices, its memory is shared.
constexpr size_t kMaxCachedShapes = 64;
// RunMixed batches inputs of similar length up to this many padded frames
// (longer inputs run alone), padding them by at most a quarter.
constexpr int64_t kMixedBatchFrames = 16384;
constexpr double kMixedMaxPadding = 0.25;

std::string CudaText(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + ": " +
         cudaGetErrorString(status);
}

ErrorCode CodeFor(cudaError_t status) {
  switch (status) {
    case cudaErrorMemoryAllocation:
      return ErrorCode::kResourceLimit;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorStubLibrary:
      return ErrorCode::kBackendUnavailable;
    default:
      return ErrorCode::kInternal;
  }
}

void Check(cudaError_t status, const std::string& call) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // so that the next call does not report it again
  throw Error(CodeFor(status),
              "cuda backend: " + call + ": " + CudaText(status));
}

void Check(cudnnStatus_t status, const std::string& call) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  throw Error(status == CUDNN_STATUS_ALLOC_FAILED ? ErrorCode::kResourceLimit
                                                  : ErrorCode::kInternal,
              "cuda backend: " + call + ": " + cudnnGetErrorString(status));
}

// Owned device memory; grows, never shrinks.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)),
        bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  ~DeviceBuffer() { Free(); }

  void Reserve(size_t bytes, const std::string& what) {
    if (bytes <= bytes_) return;
    Free();
    void* ptr = nullptr;
    Check(cudaMalloc(&ptr, bytes),
          "cudaMalloc(" + std::to_string(bytes) + " bytes for " + what + ")");
    ptr_ = ptr;
    bytes_ = bytes;
  }

  void Upload(std::span<const float> values, const std::string& what) {
    Reserve(std::max<size_t>(values.size_bytes(), 1), what);
    Check(cudaMemcpy(ptr_, values.data(), values.size_bytes(),
                     cudaMemcpyHostToDevice),
          "cudaMemcpy(" + what + ")");
  }

  float* get() const { return static_cast<float*>(ptr_); }
  int32_t* ints() const { return static_cast<int32_t*>(ptr_); }

 private:
  void Free() {
    if (ptr_ != nullptr) cudaFree(ptr_);  // nothing to do about a failure
    ptr_ = nullptr;
    bytes_ = 0;
  }

  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// RAII for cuDNN descriptors.
template <typename T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class Descriptor {
 public:
  explicit Descriptor(const char* what) {
    Check(Create(&handle_), std::string("create ") + what);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  ~Descriptor() { Destroy(handle_); }
  T get() const { return handle_; }

 private:
  T handle_{};
};

using TensorDescriptor =
    Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor,
               cudnnDestroyTensorDescriptor>;
using FilterDescriptor =
    Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor,
               cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor =
    Descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
               cudnnDestroyConvolutionDescriptor>;

void SetDevice(int device_index) {
  Check(cudaSetDevice(device_index),
        "cudaSetDevice(" + std::to_string(device_index) + ")");
}

std::string VersionText(int version, int major_divisor, int minor_divisor) {
  return std::to_string(version / major_divisor) + "." +
         std::to_string(version % major_divisor / minor_divisor);
}

// ---------------------------------------------------------------------------

// Precision "fp32" keeps cuDNN on FMA math (exact to float rounding);
// "tf32" lets convolutions use TF32 tensor cores (10-bit mantissa inputs).
cudnnMathType_t MathTypeFor(const std::string& precision) {
  return precision == "tf32" ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
}

class CudaPreparedModel final
    : public PreparedModel,
      public std::enable_shared_from_this<CudaPreparedModel> {
 public:
  CudaPreparedModel(int device_index, cudnnMathType_t math,
                    const model::ResNetWeights& weights)
      : device_index_(device_index),
        math_(math),
        plan_(BuildNetworkPlan(weights)) {
    SetDevice(device_index_);
    weights_.reserve(plan_.steps.size());
    for (ConvStep& step : plan_.steps) {
      auto conv = std::make_unique<ConvWeights>();
      conv->weight.Upload(step.weights->weight, step.name + " weight");
      conv->bias.Upload(step.weights->bias, step.name + " bias");
      weights_.push_back(std::move(conv));
      step.weights = nullptr;  // the host copy is not ours to keep
    }
    embedding_weight_.Upload(weights.embedding_weight, "embedding weight");
    embedding_bias_.Upload(weights.embedding_bias, "embedding bias");
  }

  std::unique_ptr<Session> NewSession() const override;
  int EmbeddingDim() const override { return plan_.embedding_dim; }

  int device_index() const { return device_index_; }
  cudnnMathType_t math() const { return math_; }
  const NetworkPlan& plan() const { return plan_; }
  const float* weight(size_t step) const {
    return weights_[step]->weight.get();
  }
  const float* bias(size_t step) const { return weights_[step]->bias.get(); }
  const float* embedding_weight() const { return embedding_weight_.get(); }
  const float* embedding_bias() const { return embedding_bias_.get(); }

 private:
  struct ConvWeights {
    DeviceBuffer weight;  // [out][in][k][k], as cuDNN's NCHW filter
    DeviceBuffer bias;
  };

  int device_index_;
  cudnnMathType_t math_;
  NetworkPlan plan_;
  std::vector<std::unique_ptr<ConvWeights>> weights_;  // per plan step
  DeviceBuffer embedding_weight_;
  DeviceBuffer embedding_bias_;
};

// Everything one (batch, frames) shape needs: descriptors, algorithms and
// buffer sizes.
struct CompiledConv {
  TensorDescriptor x{"tensor descriptor"};
  TensorDescriptor y{"tensor descriptor"};
  FilterDescriptor w{"filter descriptor"};
  ConvolutionDescriptor conv{"convolution descriptor"};
  cudnnConvolutionFwdAlgo_t algorithm =
      CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  size_t workspace_bytes = 0;
  int64_t out_plane = 0;   // rows * frames of the output
  int64_t out_frames = 0;  // frames of the output
};

struct CompiledShape {
  int batch = 0;
  int64_t frames = 0;
  std::vector<std::unique_ptr<CompiledConv>> convs;
  std::vector<size_t> buffer_floats;  // per virtual buffer
  size_t workspace_bytes = 0;
  int output_rows = 0;  // channels * rows of the trunk output
  int64_t output_frames = 0;
};

int CheckedDim(int64_t value, const std::string& what) {
  if (value > INT_MAX)
    throw Error(ErrorCode::kResourceLimit,
                "cuda backend: " + what + " of " + std::to_string(value) +
                    " exceeds cuDNN's 32-bit tensor limit");
  return static_cast<int>(value);
}

// Width a single input or a mixed-length run is padded to: lengths are
// rounded up by less than 1/16 (to a multiple of 1/16 of the power of two
// below, 16 frames at least), so that inputs of any length share a few
// compiled shapes. Compiling a shape (cuDNN's algorithm
// queries for 36 convolutions) costs tens of milliseconds: one per length
// made one-file-at-a-time jobs of short files 8x slower than PyTorch.
int64_t BucketWidth(int64_t frames) {
  const int64_t quantum = std::max<int64_t>(
      16,
      static_cast<int64_t>(std::bit_floor(static_cast<uint64_t>(frames))) / 16);
  return (frames + quantum - 1) / quantum * quantum;
}

// Page-locked host memory (grows, never shrinks): copies from it to the
// device run at full speed and asynchronously.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() {
    if (ptr_ != nullptr) cudaFreeHost(ptr_);
  }
  float* Reserve(size_t floats) {
    if (floats > floats_) {
      if (ptr_ != nullptr) cudaFreeHost(ptr_);
      ptr_ = nullptr;
      floats_ = 0;
      void* ptr = nullptr;
      Check(cudaMallocHost(&ptr, floats * sizeof(float)),
            "cudaMallocHost(" + std::to_string(floats * sizeof(float)) +
                " bytes of staging memory)");
      ptr_ = static_cast<float*>(ptr);
      floats_ = floats;
    }
    return ptr_;
  }

 private:
  float* ptr_ = nullptr;
  size_t floats_ = 0;
};

class CudaSession final : public Session {
 public:
  explicit CudaSession(std::shared_ptr<const CudaPreparedModel> model)
      : model_(std::move(model)) {
    SetDevice(model_->device_index());
    Check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
          "cudaStreamCreate");
    try {
      Check(cudnnCreate(&cudnn_), "cudnnCreate");
      Check(cudnnSetStream(cudnn_, stream_), "cudnnSetStream");
    } catch (...) {
      Release();
      throw;
    }
    buffers_.resize(model_->plan().num_buffers);
  }

  ~CudaSession() override {
    // Device memory and descriptors go before the handle and the stream.
    shapes_.clear();
    buffers_.clear();
    Release();
  }

  std::vector<float> Run(std::span<const float> features, int batch,
                         int64_t frames) override {
    const NetworkPlan& plan = model_->plan();
    plan.CheckFeatures(features, batch, frames);
    if (plan.OutputFrames(frames) <= 0)
      throw Error(ErrorCode::kInvalidArgument,
                  "features: " + std::to_string(frames) +
                      " frames are too few for the network");
    SetDevice(model_->device_index());
    if (batch == 1) {
      // One input of any length: padded to its bucket's width, masked.
      const Input input{features, frames};
      std::vector<float> out(plan.embedding_dim);
      RunMasked(std::span<const Input>(&input, 1), std::vector<size_t>{0}, out);
      return out;
    }
    // Batches (sliding windows) come with one repeated shape: exact.
    const int64_t fit = std::max<int64_t>(1, kMaxBatchFrames / frames);
    const int chunk = static_cast<int>(
        std::min<int64_t>({batch, fit, int64_t{kMaxChunkBatch}}));
    const size_t item_values =
        static_cast<size_t>(frames) * static_cast<size_t>(plan.feature_dim);
    std::vector<float> out(static_cast<size_t>(batch) * plan.embedding_dim);
    for (int first = 0; first < batch; first += chunk) {
      const int count = std::min(chunk, batch - first);
      RunChunk(features.subspan(first * item_values, count * item_values),
               count, frames, out.data() + first * plan.embedding_dim);
    }
    return out;
  }

  // Inputs of different lengths: runs of similar length (PlanMixedRuns),
  // each padded to one width, with every convolution's output columns past
  // an item's own length zeroed in the bias kernel, and each item pooled
  // over its own frames (so each row is what the input alone gives).
  std::vector<float> RunMixed(std::span<const Input> inputs) override {
    const NetworkPlan& plan = model_->plan();
    std::vector<int64_t> lengths;
    for (const Input& input : inputs) {
      plan.CheckFeatures(input.features, 1, input.frames);
      if (plan.OutputFrames(input.frames) <= 0)
        throw Error(ErrorCode::kInvalidArgument,
                    "features: " + std::to_string(input.frames) +
                        " frames are too few for the network");
      lengths.push_back(input.frames);
    }
    SetDevice(model_->device_index());
    std::vector<float> embeddings(inputs.size() * plan.embedding_dim);
    for (const std::vector<size_t>& run : PlanMixedRuns(
             lengths, {kMixedBatchFrames, kMixedMaxPadding, kMixedBatchFrames}))
      RunMasked(inputs, run, embeddings);
    return embeddings;
  }

 private:
  // Inputs `run` (one, or a run of RunMixed) padded to the bucket width of
  // the longest, in the staging memory; row run[b] of `embeddings` gets
  // item b's embedding.
  void RunMasked(std::span<const Input> inputs, std::span<const size_t> run,
                 std::vector<float>& embeddings) {
    const NetworkPlan& plan = model_->plan();
    const int count = static_cast<int>(run.size());
    int64_t longest = 0;
    for (const size_t i : run) longest = std::max(longest, inputs[i].frames);
    const int64_t width = BucketWidth(longest);
    const size_t item_values = static_cast<size_t>(width) * plan.feature_dim;
    float* padded = staging_.Reserve(item_values * count);
    std::fill(padded, padded + item_values * count, 0.0f);
    // Valid output frames per step and item ([steps][count]), following
    // each buffer's valid length through the plan, then the trunk output's.
    std::vector<int64_t> buffer_valid(plan.num_buffers * count, 0);
    for (int b = 0; b < count; ++b) {
      const Input& item = inputs[run[b]];
      std::copy(item.features.begin(), item.features.end(),
                padded + b * item_values);
      buffer_valid[plan.input_buffer * count + b] = item.frames;
    }
    valid_host_.resize((plan.steps.size() + 1) * count);
    for (size_t i = 0; i < plan.steps.size(); ++i) {
      const ConvStep& step = plan.steps[i];
      for (int b = 0; b < count; ++b) {
        const int64_t out =
            step.OutputLength(buffer_valid[step.src_buffer * count + b]);
        buffer_valid[step.dst_buffer * count + b] = out;
        valid_host_[i * count + b] = static_cast<int32_t>(out);
      }
    }
    for (int b = 0; b < count; ++b)
      valid_host_[plan.steps.size() * count + b] =
          static_cast<int32_t>(buffer_valid[plan.output_buffer * count + b]);
    valid_.Reserve(valid_host_.size() * sizeof(int32_t), "item lengths");
    Check(cudaMemcpyAsync(valid_.ints(), valid_host_.data(),
                          valid_host_.size() * sizeof(int32_t),
                          cudaMemcpyHostToDevice, stream_),
          "cudaMemcpyAsync(item lengths)");
    std::vector<float> out(static_cast<size_t>(count) * plan.embedding_dim);
    RunChunk({padded, item_values * count}, count, width, out.data(),
             valid_.ints());
    for (int b = 0; b < count; ++b)
      std::copy_n(out.begin() + b * plan.embedding_dim, plan.embedding_dim,
                  embeddings.begin() + run[b] * plan.embedding_dim);
  }

  void Release() {
    if (cudnn_ != nullptr) cudnnDestroy(cudnn_);
    cudnn_ = nullptr;
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }

  // `valid` (device, [steps + 1][batch], or nullptr): each item's valid
  // output frames per step, then of the trunk output (RunMasked).
  void RunChunk(std::span<const float> features, int batch, int64_t frames,
                float* out, const int32_t* valid = nullptr) {
    const NetworkPlan& plan = model_->plan();
    const CompiledShape& shape = Shape(batch, frames);
    for (size_t i = 0; i < buffers_.size(); ++i)
      buffers_[i].Reserve(shape.buffer_floats[i] * sizeof(float),
                          "activations");
    input_.Reserve(features.size_bytes(), "features");
    workspace_.Reserve(std::max<size_t>(shape.workspace_bytes, 1),
                       "cuDNN workspace");
    stats_.Reserve(static_cast<size_t>(batch) * plan.pooled_dim * sizeof(float),
                   "pooled statistics");
    const size_t out_count = static_cast<size_t>(batch) * plan.embedding_dim;
    output_.Reserve(out_count * sizeof(float), "embeddings");

    // From the staging memory (RunMasked) or from the caller's memory
    // (Run's batches: a copy into staging first measured slower than the
    // driver's own pipelined copy from pageable memory).
    Check(cudaMemcpyAsync(input_.get(), features.data(), features.size_bytes(),
                          cudaMemcpyHostToDevice, stream_),
          "cudaMemcpyAsync(features)");
    Check(
        LaunchTransposeFeatures(input_.get(), buffers_[plan.input_buffer].get(),
                                batch, frames, plan.feature_dim, stream_),
        "transpose kernel");
    for (size_t i = 0; i < plan.steps.size(); ++i) {
      const ConvStep& step = plan.steps[i];
      const CompiledConv& conv = *shape.convs[i];
      const float alpha = 1.0f;
      // beta 1 adds the residual already in dst; with 0 dst is not read.
      const float beta = step.accumulate ? 1.0f : 0.0f;
      Check(cudnnConvolutionForward(
                cudnn_, &alpha, conv.x.get(), buffers_[step.src_buffer].get(),
                conv.w.get(), model_->weight(i), conv.conv.get(),
                conv.algorithm, workspace_.get(), conv.workspace_bytes, &beta,
                conv.y.get(), buffers_[step.dst_buffer].get()),
            "cudnnConvolutionForward(" + step.name + ")");
      Check(LaunchBiasActivation(
                buffers_[step.dst_buffer].get(), model_->bias(i), batch,
                step.out_channels, conv.out_plane, conv.out_frames, step.relu,
                valid != nullptr ? valid + i * batch : nullptr, stream_),
            "bias kernel (" + step.name + ")");
    }
    Check(LaunchStatisticsPooling(
              buffers_[plan.output_buffer].get(), stats_.get(), batch,
              shape.output_rows, shape.output_frames,
              valid != nullptr ? valid + plan.steps.size() * batch : nullptr,
              stream_),
          "pooling kernel");
    Check(LaunchLinear(stats_.get(), model_->embedding_weight(),
                       model_->embedding_bias(), output_.get(), batch,
                       plan.pooled_dim, plan.embedding_dim, stream_),
          "embedding kernel");
    Check(cudaMemcpyAsync(out, output_.get(), out_count * sizeof(float),
                          cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync(embeddings)");
    Check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

  const CompiledShape& Shape(int batch, int64_t frames) {
    for (auto it = shapes_.begin(); it != shapes_.end(); ++it) {
      if ((*it)->batch == batch && (*it)->frames == frames) {
        shapes_.splice(shapes_.begin(), shapes_, it);
        return *shapes_.front();
      }
    }
    shapes_.push_front(Compile(batch, frames));
    while (shapes_.size() > kMaxCachedShapes) shapes_.pop_back();
    return *shapes_.front();
  }

  std::unique_ptr<CompiledShape> Compile(int batch, int64_t frames) {
    const NetworkPlan& plan = model_->plan();
    auto shape = std::make_unique<CompiledShape>();
    shape->batch = batch;
    shape->frames = frames;
    shape->buffer_floats.assign(plan.num_buffers, 1);
    struct Dims {
      int channels = 0;
      int64_t rows = 0, frames = 0;
    };
    std::vector<Dims> dims(plan.num_buffers);
    dims[plan.input_buffer] = {1, plan.feature_dim, frames};
    auto need = [&](int buffer) {
      const Dims& d = dims[buffer];
      const int64_t count = int64_t{batch} * d.channels * d.rows * d.frames;
      CheckedDim(count, "a tensor of " + std::to_string(batch) + " x " +
                            std::to_string(frames) + " frames");
      shape->buffer_floats[buffer] =
          std::max(shape->buffer_floats[buffer], static_cast<size_t>(count));
    };
    need(plan.input_buffer);
    for (size_t conv_index = 0; conv_index < plan.steps.size(); ++conv_index) {
      const ConvStep& step = plan.steps[conv_index];
      const Dims in = dims[step.src_buffer];
      const Dims out = {step.out_channels, step.OutputLength(in.rows),
                        step.OutputLength(in.frames)};
      VOXPRINT_CHECK(out.rows > 0 && out.frames > 0,
                     "cuda backend: " + step.name + " has an empty output");
      dims[step.dst_buffer] = out;
      need(step.dst_buffer);

      auto conv = std::make_unique<CompiledConv>();
      Check(cudnnSetTensor4dDescriptor(conv->x.get(), CUDNN_TENSOR_NCHW,
                                       CUDNN_DATA_FLOAT, batch, in.channels,
                                       static_cast<int>(in.rows),
                                       static_cast<int>(in.frames)),
            "cudnnSetTensor4dDescriptor(" + step.name + " input)");
      Check(cudnnSetTensor4dDescriptor(conv->y.get(), CUDNN_TENSOR_NCHW,
                                       CUDNN_DATA_FLOAT, batch, out.channels,
                                       static_cast<int>(out.rows),
                                       static_cast<int>(out.frames)),
            "cudnnSetTensor4dDescriptor(" + step.name + " output)");
      Check(cudnnSetFilter4dDescriptor(
                conv->w.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                step.out_channels, step.in_channels, step.kernel, step.kernel),
            "cudnnSetFilter4dDescriptor(" + step.name + ")");
      Check(cudnnSetConvolution2dDescriptor(
                conv->conv.get(), step.padding, step.padding, step.stride,
                step.stride, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
            "cudnnSetConvolution2dDescriptor(" + step.name + ")");
      // FMA math unless "tf32": TF32's 10-bit mantissa breaks parity with
      // the reference.
      Check(cudnnSetConvolutionMathType(conv->conv.get(), model_->math()),
            "cudnnSetConvolutionMathType(" + step.name + ")");
      int n = 0, c = 0, h = 0, w = 0;
      Check(cudnnGetConvolution2dForwardOutputDim(
                conv->conv.get(), conv->x.get(), conv->w.get(), &n, &c, &h, &w),
            "cudnnGetConvolution2dForwardOutputDim(" + step.name + ")");
      VOXPRINT_CHECK(
          n == batch && c == out.channels && h == out.rows && w == out.frames,
          "cuda backend: cuDNN's output shape of " + step.name +
              " differs from the plan's");
      ChooseAlgorithm(*conv, step.name, conv_index, batch, frames);
      conv->out_plane = out.rows * out.frames;
      conv->out_frames = out.frames;
      shape->workspace_bytes =
          std::max(shape->workspace_bytes, conv->workspace_bytes);
      shape->convs.push_back(std::move(conv));
    }
    const Dims& out = dims[plan.output_buffer];
    shape->output_rows = CheckedDim(out.channels * out.rows, "trunk rows");
    shape->output_frames = out.frames;
    return shape;
  }

  // Whether cuDNN's candidate is acceptable: deterministic, not FFT (less
  // exact, memory hungry), FMA math unless "tf32", a bounded workspace.
  bool Acceptable(const cudnnConvolutionFwdAlgoPerf_t& c) const {
    return c.status == CUDNN_STATUS_SUCCESS &&
           c.algo != CUDNN_CONVOLUTION_FWD_ALGO_FFT &&
           c.algo != CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING &&
           c.determinism == CUDNN_DETERMINISTIC &&
           (c.mathType == CUDNN_FMA_MATH || model_->math() != CUDNN_FMA_MATH) &&
           c.memory <= kMaxWorkspaceBytes;
  }

  using MeasuredKey = std::tuple<size_t, unsigned, int64_t>;

  // Batches (sliding windows, mixed-length runs) take the fastest
  // acceptable algorithm by measurement: 1.4x cuDNN's heuristic choice on an
  // H200 for 32 windows of 3 s. Measuring costs ~0.3 s per shape, so it is
  // done once per convolution and shape class (batch rounded up to a power
  // of two, width to its bucket); other shapes of the class reuse the
  // choice. Single inputs take the heuristic's choice, as fast there.
  void ChooseAlgorithm(CompiledConv& conv, const std::string& name,
                       size_t conv_index, int batch, int64_t frames) {
    const auto workspace_of = [&](cudnnConvolutionFwdAlgo_t algorithm,
                                  size_t* bytes) {
      return cudnnGetConvolutionForwardWorkspaceSize(
          cudnn_, conv.x.get(), conv.w.get(), conv.conv.get(), conv.y.get(),
          algorithm, bytes);
    };
    const bool measure = batch >= 2;
    const MeasuredKey key{conv_index,
                          std::bit_ceil(static_cast<unsigned>(batch)),
                          BucketWidth(frames)};
    if (measure) {
      if (const auto found = measured_.find(key); found != measured_.end()) {
        size_t bytes = 0;
        if (workspace_of(found->second, &bytes) == CUDNN_STATUS_SUCCESS &&
            bytes <= kMaxWorkspaceBytes) {
          conv.algorithm = found->second;
          conv.workspace_bytes = bytes;
          return;
        }
      }
    }
    int capacity = 0;
    Check(cudnnGetConvolutionForwardAlgorithmMaxCount(cudnn_, &capacity),
          "cudnnGetConvolutionForwardAlgorithmMaxCount");
    std::vector<cudnnConvolutionFwdAlgoPerf_t> candidates(
        std::max(capacity, 1));
    int returned = 0;
    if (measure) {
      Check(cudnnFindConvolutionForwardAlgorithm(
                cudnn_, conv.x.get(), conv.w.get(), conv.conv.get(),
                conv.y.get(), static_cast<int>(candidates.size()), &returned,
                candidates.data()),
            "cudnnFindConvolutionForwardAlgorithm(" + name + ")");
    } else {
      Check(cudnnGetConvolutionForwardAlgorithm_v7(
                cudnn_, conv.x.get(), conv.w.get(), conv.conv.get(),
                conv.y.get(), static_cast<int>(candidates.size()), &returned,
                candidates.data()),
            "cudnnGetConvolutionForwardAlgorithm_v7(" + name + ")");
    }
    conv.algorithm = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    for (int i = 0; i < returned; ++i) {
      if (Acceptable(candidates[i])) {
        conv.algorithm = candidates[i].algo;
        break;
      }
    }
    if (measure) measured_[key] = conv.algorithm;
    Check(workspace_of(conv.algorithm, &conv.workspace_bytes),
          "cudnnGetConvolutionForwardWorkspaceSize(" + name + ")");
  }

  std::shared_ptr<const CudaPreparedModel> model_;
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  std::vector<DeviceBuffer> buffers_;  // the plan's virtual buffers
  DeviceBuffer input_;                 // [batch, frames, bins]
  DeviceBuffer workspace_;
  DeviceBuffer stats_;               // [batch, pooled_dim]
  DeviceBuffer output_;              // [batch, embedding_dim]
  DeviceBuffer valid_;               // RunMasked: [steps + 1][batch] int32
  std::vector<int32_t> valid_host_;  // its host copy
  PinnedBuffer staging_;             // RunMasked: [batch, width, bins]
  std::list<std::unique_ptr<CompiledShape>> shapes_;  // most recent first
  // Measured choices (ChooseAlgorithm): conv, batch class, width bucket.
  std::map<MeasuredKey, cudnnConvolutionFwdAlgo_t> measured_;
};

std::unique_ptr<Session> CudaPreparedModel::NewSession() const {
  return std::make_unique<CudaSession>(shared_from_this());
}

// ---------------------------------------------------------------------------

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device_index, const BackendOptions& options)
      : device_index_(device_index), options_(options) {
    if (options.num_threads < 0)
      throw Error(
          ErrorCode::kInvalidArgument,
          "backend option num_threads: " + std::to_string(options.num_threads) +
              " (expected 0 for all cores, or a positive count)");
    if (options.precision != "fp32" && options.precision != "tf32")
      throw Error(ErrorCode::kInvalidArgument,
                  "backend option precision: \"" + options.precision +
                      "\" (the cuda backend supports fp32 and tf32)");
    SetDevice(device_index_);
    cudaDeviceProp properties{};
    Check(cudaGetDeviceProperties(&properties, device_index_),
          "cudaGetDeviceProperties");
    int runtime = 0, driver = 0;
    Check(cudaRuntimeGetVersion(&runtime), "cudaRuntimeGetVersion");
    Check(cudaDriverGetVersion(&driver), "cudaDriverGetVersion");
    description_ =
        std::string(properties.name) + " (sm_" +
        std::to_string(properties.major) + std::to_string(properties.minor) +
        ", " + std::to_string(properties.totalGlobalMem >> 20) +
        " MiB), CUDA runtime " + VersionText(runtime, 1000, 10) + ", driver " +
        VersionText(driver, 1000, 10) + ", cuDNN " +
        VersionText(static_cast<int>(cudnnGetVersion()), 10000, 100) +
        (options.precision == "tf32" ? ", TF32 tensor cores (opt-in)"
                                     : ", fp32 FMA (no TF32)");
  }

  BackendInfo Info() const override {
    BackendInfo info;
    info.name = "cuda";
    info.device_index = device_index_;
    info.num_threads = 1;  // one CUDA stream per session; no host threads
    info.description = description_;
    info.precision = options_.precision;
    // 32 windows of 3 s: the best sliding throughput measured on an H200.
    info.batch_frames = 10000;
    return info;
  }

  using Backend::Prepare;  // the taking-over overload copies to the GPU too
  std::shared_ptr<const PreparedModel> Prepare(
      const model::ResNetWeights& weights) const override {
    return std::make_shared<CudaPreparedModel>(
        device_index_, MathTypeFor(options_.precision), weights);
  }

 private:
  int device_index_;
  BackendOptions options_;
  std::string description_;
};

}  // namespace

bool CompiledIn() { return true; }

std::string UnavailableReason(int device_index) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    if (status == cudaErrorInsufficientDriver || status == cudaErrorStubLibrary)
      return "no CUDA driver, or one too old (" + CudaText(status) + ")";
    return "CUDA is unusable (" + CudaText(status) + ")";
  }
  if (count == 0) return "no CUDA device";
  if (device_index < 0 || device_index >= count)
    return "CUDA device " + std::to_string(device_index) + " does not exist (" +
           std::to_string(count) + " device" + (count == 1 ? "" : "s") + ")";
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) previous = device_index;
  std::string reason;
  cudaError_t runnable = cudaSetDevice(device_index);
  if (runnable == cudaSuccess) runnable = CheckKernelsRunnable();
  if (runnable != cudaSuccess) {
    cudaGetLastError();
    cudaDeviceProp properties{};
    const bool known =
        cudaGetDeviceProperties(&properties, device_index) == cudaSuccess;
    reason = "CUDA device " + std::to_string(device_index) +
             (known ? " (" + std::string(properties.name) + ", sm_" +
                          std::to_string(properties.major) +
                          std::to_string(properties.minor) + ")"
                    : std::string()) +
             " cannot run this build's kernels (" + CudaText(runnable) +
             "; rebuild with its architecture in CMAKE_CUDA_ARCHITECTURES)";
  }
  cudaSetDevice(previous);
  return reason;
}

std::unique_ptr<Backend> CreateCudaBackend(int device_index,
                                           const BackendOptions& options) {
  const std::string reason = UnavailableReason(device_index);
  if (!reason.empty())
    throw Error(ErrorCode::kBackendUnavailable,
                "cuda:" + std::to_string(device_index) + ": " + reason);
  return std::make_unique<CudaBackend>(device_index, options);
}

}  // namespace voxprint::backends::cuda
