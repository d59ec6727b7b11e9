// oneDNN implementation of the CPU backend.
//
// Prepare: copies the folded weights and picks each convolution's algorithm
// (Winograd or direct, see ChooseAlgorithm); it compiles nothing, so it is
// cheap (start-up latency). A layer's weights are reordered into the layout
// its primitive prefers when a compiled shape first asks for that layout,
// under the model's mutex. The preferred layout can depend on the input shape
// (Winograd blocking does), so the reordered copies are shared by the
// compiled shapes that use them and freed with the last one: the prepared
// model holds the plain weights plus only the layouts in use.
//
// Precision "bf16" runs every convolution with bf16 weights and activations
// (f32 bias, f32 accumulation inside oneDNN); "mixed" only those of stages 3
// and 4 (the first layers cause most of bf16's error, the last two stages
// hold most of the work); the input, the pooling and the linear layer stay
// f32. Where the type changes, a reorder converts the activations.
//
// Session: per (batch, frames) a compiled shape holds the primitives and the
// memory descriptors (compiling costs ~5 ms, plus weight reorders the first
// time a layout appears); the
// activation buffers and the scratchpad belong to the session and are reused
// across calls (fresh buffers per call cost page faults). Long inputs run as
// overlapping time tiles whose halo covers the receptive field, so the result
// equals the untiled run while the buffers stay bounded.
#include "backends/cpu/cpu-backend.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <functional>
#include <limits>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "backends/cpu/winograd-choice.h"
#include "backends/cpu/winograd-weights.h"
#include "backends/network-plan.h"
#include "backends/run-cancel.h"
#include "memory/large-buffer.h"
#include "voxprint/error.h"

namespace voxprint::backends::cpu {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using DataType = memory::data_type;

// Weights of one layer in one layout, shared by the compiled shapes that use
// it (the prepared model keeps only a weak reference to reordered copies).
using SharedWeights = std::shared_ptr<const memory>;

// oneDNN 2.6 runs bf16 convolutions natively from AVX512_BF16 on (AMX
// includes it); below that it would emulate bf16, slower than f32.
bool NativeBf16() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (isa & bf16) == bf16;
}

const char* IsaName(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic:
      return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "unknown ISA";
  }
}

// The first network stage (0: the stem, 1..4: residual stages) whose
// convolutions run in bf16 for a precision option: kNoBf16 for fp32, none
// for a precision the cpu backend does not have.
constexpr int kNoBf16 = std::numeric_limits<int>::max();
std::optional<int> FirstBf16Stage(const std::string& precision) {
  if (precision == "fp32") return kNoBf16;
  if (precision == "bf16") return 0;
  if (precision == "mixed") return 3;
  return std::nullopt;
}

const char* TypeName(memory::data_type type) {
  return type == memory::data_type::bf16 ? "bf16" : "f32";
}

std::string LibraryDescription() {
  const dnnl::version_t* v = dnnl::version();
  std::string runtime = "sequential";
  if (v->cpu_runtime == DNNL_RUNTIME_OMP) runtime = "OpenMP";
  if (v->cpu_runtime == DNNL_RUNTIME_TBB) runtime = "TBB";
  if (v->cpu_runtime == DNNL_RUNTIME_THREADPOOL) runtime = "threadpool";
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) +
         "." + std::to_string(v->patch) + " (" + runtime + "), ISA " +
         IsaName(dnnl::get_effective_cpu_isa());
}

// oneDNN's Debian build uses OpenMP: the thread count is the calling
// thread's OpenMP setting, read when primitives are created and run, so it is
// set on every entry point (each session may run on its own thread).
void UseThreads(int num_threads) { omp_set_num_threads(num_threads); }

[[noreturn]] void RethrowDnnl(const dnnl::error& e, const std::string& what) {
  if (e.status == dnnl_out_of_memory)
    throw Error(ErrorCode::kResourceLimit, what + ": out of memory (oneDNN)");
  throw Error(ErrorCode::kInternal,
              what + ": oneDNN failed: " + std::string(e.what()));
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t FloorDiv(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

using AlignedBuffer = voxprint::memory::LargeBuffer;

// Short name of an activation layout, for reports.
std::string LayoutName(const memory::desc& desc) {
  const memory::dims dims = desc.dims();
  if (desc.data.format_kind != dnnl_blocked || dims.size() != 4) return "other";
  const std::pair<Tag, const char*> known[] = {
      {Tag::nchw, "nchw"},       {Tag::nhwc, "nhwc"}, {Tag::nChw8c, "nChw8c"},
      {Tag::nChw16c, "nChw16c"}, {Tag::acdb, "nhwc"}, {Tag::abdc, "ncwh"}};
  for (const auto& [tag, name] : known)
    if (desc == memory::desc(dims, desc.data_type(), tag)) return name;
  return "blocked";
}

const char* AlgorithmName(dnnl::algorithm algorithm) {
  return algorithm == dnnl::algorithm::convolution_winograd ? "winograd"
                                                            : "direct";
}

// One item's features [frames, bins] -> the network's input layout
// [bins, width] (frequency is the height), columns [0, frames) of it.
void TransposeFrames(const float* features, int64_t frames, int bins,
                     int64_t width, float* out) {
  for (int64_t t = 0; t < frames; ++t)
    for (int f = 0; f < bins; ++f) out[f * width + t] = features[t * bins + f];
}

// Channels per innermost block of a 4-D activation in a plain or
// channel-blocked layout (nchw, nhwc: 1; nChw16c: 16); 0 for other layouts.
int64_t ChannelBlock(const memory::desc& desc) {
  const dnnl_memory_desc_t& md = desc.data;
  if (md.format_kind != dnnl_blocked || md.ndims != 4) return 0;
  const dnnl_blocking_desc_t& blocking = md.format_desc.blocking;
  if (blocking.inner_nblks == 0) return 1;
  if (blocking.inner_nblks == 1 && blocking.inner_idxs[0] == 1)
    return blocking.inner_blks[0];
  return 0;
}

// Zeroes columns [valid[n], W) of each item n of a 4-D activation
// [N, C, H, W] held at `data` in a layout ChannelBlock knows.
void ZeroColumnsFrom(const memory::desc& desc, void* data,
                     std::span<const int64_t> valid) {
  const int64_t block = ChannelBlock(desc);
  VOXPRINT_CHECK(block > 0, "activation layout without column masking");
  const dnnl_memory_desc_t& md = desc.data;
  const dnnl_blocking_desc_t& blocking = md.format_desc.blocking;
  const size_t element = memory::data_type_size(desc.data_type());
  const int64_t channel_blocks = md.padded_dims[1] / block;
  const int64_t rows = md.dims[2], columns = md.dims[3];
  const dnnl_dims_t& stride = blocking.strides;
  auto* base = static_cast<uint8_t*>(data) + md.offset0 * element;
  for (int64_t n = 0; n < static_cast<int64_t>(valid.size()); ++n) {
    const int64_t from = std::min(valid[n], columns);
    if (from == columns) continue;
    for (int64_t cb = 0; cb < channel_blocks; ++cb)
      for (int64_t h = 0; h < rows; ++h) {
        uint8_t* row =
            base + (n * stride[0] + cb * stride[1] + h * stride[2]) * element;
        if (stride[3] == block) {  // the tail is one run
          std::memset(row + from * block * element, 0,
                      (columns - from) * block * element);
          continue;
        }
        for (int64_t w = from; w < columns; ++w)
          std::memset(row + w * stride[3] * element, 0, block * element);
      }
  }
}

// --------------------------------------------------------------------------
// Prepared model.

struct PreparedConv {
  ConvStep step;         // step.weights points into the model's own weights
  memory plain_weights;  // oihw over the layer's folded weights
  memory bias_memory;    // x over its bias
  DataType type = DataType::f32;  // of its weights and activations
  dnnl::algorithm algorithm = dnnl::algorithm::convolution_direct;
};

class CpuPreparedModel;

// Per-shape compiled network.
struct CompiledShape {
  struct Op {
    dnnl::primitive primitive;
    std::unordered_map<int, memory> args;
    std::vector<std::pair<int, int>> bindings;  // (arg, slot)
    SharedWeights weights;  // keeps args[DNNL_ARG_WEIGHTS]'s layout cached
    int conv_step = -1;     // the plan step a convolution runs; -1: reorder
  };
  int batch = 0;
  int64_t frames = 0;
  int64_t output_frames = 0;
  std::vector<Op> ops;
  std::vector<size_t> slot_bytes;  // activation slots
  int input_slot = 0;              // plain [batch, 1, bins, frames]
  int output_slot = 0;             // plain [batch, C, rows, output_frames]
  // Every convolution writes a layout ZeroColumnsFrom can mask (RunMixed).
  bool maskable = true;
  std::vector<std::string> algorithms;
};

// The final linear layer for one batch size.
struct CompiledLinear {
  CompiledShape::Op op;
  size_t scratchpad_bytes = 0;
};

class CpuSession;

class CpuPreparedModel final
    : public PreparedModel,
      public std::enable_shared_from_this<CpuPreparedModel> {
 public:
  // Takes the weights over: the plain layouts are views of them (no copy,
  // which start-up latency feels).
  // Convolutions of stages from first_bf16_stage on run in bf16.
  CpuPreparedModel(model::ResNetWeights weights, int num_threads,
                   const CpuTuning& tuning, int first_bf16_stage)
      : engine_(dnnl::engine::kind::cpu, 0),
        weights_(std::move(weights)),
        plan_(BuildNetworkPlan(weights_)),
        num_threads_(num_threads),
        tuning_(tuning) {
    winograd_available_ =
        tuning_.algorithm != ConvAlgorithm::kDirect && WinogradAvailable();
    convs_.reserve(plan_.steps.size());
    for (const ConvStep& step : plan_.steps) {
      PreparedConv conv;
      conv.step = step;
      // oneDNN takes non-const handles; these are only ever read.
      conv.plain_weights = memory(
          {{step.out_channels, step.in_channels, step.kernel, step.kernel},
           DataType::f32,
           Tag::oihw},
          engine_, const_cast<float*>(step.weights->weight.data()));
      conv.bias_memory =
          memory({{step.out_channels}, DataType::f32, Tag::x}, engine_,
                 const_cast<float*>(step.weights->bias.data()));
      conv.type =
          step.stage >= first_bf16_stage ? DataType::bf16 : DataType::f32;
      conv.algorithm = ChooseAlgorithm(step, conv.type);
      if (conv.algorithm == dnnl::algorithm::convolution_winograd)
        activation_tag_ = Tag::nChw16c;
      convs_.push_back(std::move(conv));
    }
    if (tuning_.layout == ActivationLayout::kAny) activation_tag_ = Tag::any;
    if (tuning_.layout == ActivationLayout::kBlocked16)
      activation_tag_ = Tag::nChw16c;
    linear_plain_weights_ = memory(
        {{plan_.embedding_dim, plan_.pooled_dim}, DataType::f32, Tag::oi},
        engine_, const_cast<float*>(weights_.embedding_weight.data()));
    linear_bias_memory_ =
        memory({{plan_.embedding_dim}, DataType::f32, Tag::x}, engine_,
               const_cast<float*>(weights_.embedding_bias.data()));
    reordered_.resize(convs_.size() + 1);
    const int64_t tile = tuning_.tile_frames;
    if (tile % plan_.time_stride != 0 ||
        tile < 2 * (plan_.receptive_left + plan_.receptive_right) +
                   4 * plan_.time_stride ||
        tuning_.max_untiled_frames < 1 || tuning_.max_batch_frames < 1 ||
        tuning_.max_cached_shapes < 1 || tuning_.min_winograd_positions < 0 ||
        tuning_.max_mixed_batch_frames < 1 || !(tuning_.max_mixed_padding >= 0))
      throw Error(ErrorCode::kInvalidArgument,
                  "cpu backend tuning: tile_frames " + std::to_string(tile) +
                      " must be a multiple of " +
                      std::to_string(plan_.time_stride) +
                      " and cover twice the receptive field (" +
                      std::to_string(plan_.receptive_left) + " + " +
                      std::to_string(plan_.receptive_right) +
                      " frames); limits must be positive");
  }

  std::unique_ptr<Session> NewSession() const override;
  int EmbeddingDim() const override { return plan_.embedding_dim; }

  const dnnl::engine& engine() const { return engine_; }
  const NetworkPlan& plan() const { return plan_; }
  const std::vector<PreparedConv>& convs() const { return convs_; }
  int num_threads() const { return num_threads_; }
  const CpuTuning& tuning() const { return tuning_; }
  const memory& linear_bias() const { return linear_bias_memory_; }
  // Layout requested for activations of `type`: any (each primitive's
  // choice), or for f32 nChw16c when Winograd runs somewhere (its only
  // layout), which avoids reorders between layers. bf16 layers never run
  // Winograd and keep oneDNN's choice (nhwc for the AMX kernels) unless the
  // tuning forces a layout.
  Tag activation_tag(DataType type) const {
    if (type == DataType::bf16 && tuning_.layout == ActivationLayout::kAuto)
      return Tag::any;
    return activation_tag_;
  }

  // Weights of layer `index` (convs, then the linear layer at convs().size())
  // in layout `desc`: reordered on the first request while no compiled shape
  // holds that layout, else shared. Thread-safe.
  SharedWeights Weights(size_t index, const memory::desc& desc) const {
    const memory& plain = index < convs_.size() ? convs_[index].plain_weights
                                                : linear_plain_weights_;
    // The plain copy lives as long as the model, which sessions keep alive.
    if (desc == plain.get_desc()) return std::make_shared<const memory>(plain);
    std::lock_guard<std::mutex> lock(mutex_);
    auto& entries = reordered_.at(index);
    std::erase_if(entries, [](const auto& e) { return e.second.expired(); });
    for (const auto& [cached_desc, cached] : entries)
      if (cached_desc == desc)
        if (SharedWeights live = cached.lock()) return live;
    auto reordered = std::make_shared<memory>(desc, engine_);
    // Convs' plain weights are f32 oihw; CanPack checks the target.
    if (index < convs_.size() && CanPackWinogradWeights(desc.data)) {
      const memory::dims& dims = plain.get_desc().dims();
      PackWinogradWeights(static_cast<const float*>(plain.get_data_handle()),
                          static_cast<int>(dims[0]), static_cast<int>(dims[1]),
                          desc.data,
                          static_cast<float*>(reordered->get_data_handle()));
    } else {
      memory source = plain;
      dnnl::stream stream(engine_);
      dnnl::reorder(source, *reordered).execute(stream, source, *reordered);
      stream.wait();
    }
    entries.emplace_back(desc, reordered);
    return reordered;
  }

  // The Winograd kernel for shapes where oneDNN offers both (measured on
  // first use when the tuning asks for the faster).
  WinogradKernel winograd_kernel() const {
    std::call_once(winograd_kernel_once_, [this] {
      switch (tuning_.winograd_kernel) {
        case WinogradKernelChoice::kF2x2:
          winograd_kernel_ = WinogradKernel::kF2x2;
          break;
        case WinogradKernelChoice::kF4x4:
          winograd_kernel_ = WinogradKernel::kF4x4;
          break;
        case WinogradKernelChoice::kMeasured:
          winograd_kernel_ = FasterWinogradKernel(num_threads_);
          break;
      }
    });
    return winograd_kernel_;
  }

  // Winograd layouts of layer `index`'s weights that some compiled shape
  // holds now. Thread-safe.
  std::vector<memory::desc> HeldWinogradLayouts(size_t index) const {
    std::vector<memory::desc> held;
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [desc, cached] : reordered_.at(index))
      if (desc.data.format_kind == dnnl_format_kind_wino && !cached.expired())
        held.push_back(desc);
    return held;
  }

  // Bytes of weights held: plain copies plus the reordered layouts in use.
  size_t WeightBytes() const {
    size_t bytes = linear_plain_weights_.get_desc().get_size() +
                   linear_bias_memory_.get_desc().get_size();
    for (const PreparedConv& conv : convs_)
      bytes += conv.plain_weights.get_desc().get_size() +
               conv.bias_memory.get_desc().get_size();
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& entries : reordered_)
      for (const auto& [desc, cached] : entries)
        if (!cached.expired()) bytes += desc.get_size();
    return bytes;
  }

 private:
  // oneDNN 2.6 has fp32 Winograd for AVX-512 only.
  bool WinogradAvailable() const {
    try {
      const memory::desc data({1, 64, 16, 16}, DataType::f32, Tag::nChw16c);
      const memory::desc weights({64, 64, 3, 3}, DataType::f32, Tag::any);
      const dnnl::convolution_forward::desc desc(
          dnnl::prop_kind::forward_inference,
          dnnl::algorithm::convolution_winograd, data, weights, data, {1, 1},
          {1, 1}, {1, 1});
      dnnl::convolution_forward::primitive_desc(desc, engine_);
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }

  dnnl::algorithm ChooseAlgorithm(const ConvStep& step, DataType type) const {
    // oneDNN 2.6 has no bf16 Winograd.
    const bool winograd_shape = winograd_available_ && type == DataType::f32 &&
                                step.kernel == 3 && step.stride == 1;
    switch (tuning_.algorithm) {
      case ConvAlgorithm::kDirect:
        return dnnl::algorithm::convolution_direct;
      case ConvAlgorithm::kWinograd:
        return winograd_shape ? dnnl::algorithm::convolution_winograd
                              : dnnl::algorithm::convolution_direct;
      case ConvAlgorithm::kAuto:
        break;
    }
    // Rule measured on ResNet34 (AVX-512; 1x30 s, 28x3 s, 64x1.5 s, 1x1.5 s):
    // oneDNN's Winograd runs every 3x3 stride-1 trunk conv (32..256
    // channels) in about half the time of direct, and the whole network in
    // 0.5-0.6x, at 9e-6 relative error against the reference (direct:
    // 7e-6); which of its two kernels runs a single input is chosen per CPU
    // (winograd_kernel()). The stem (1 input channel), the strided and the 1x1
    // convs have no Winograd kernel and stay direct. Layers with fewer
    // output positions than CpuTuning::min_winograd_positions still run
    // direct (ShapeCompiler): their share of the one-time Winograd weight
    // transform (~300 ms of CPU for the whole network, one thread) would
    // cost a single short embedding more than it saves.
    return winograd_shape && step.in_channels >= 16 && step.out_channels >= 16
               ? dnnl::algorithm::convolution_winograd
               : dnnl::algorithm::convolution_direct;
  }

  dnnl::engine engine_;
  const model::ResNetWeights weights_;  // the plan points into these
  NetworkPlan plan_;
  int num_threads_;
  CpuTuning tuning_;
  bool winograd_available_ = false;
  Tag activation_tag_ = Tag::any;
  std::vector<PreparedConv> convs_;
  memory linear_plain_weights_;
  memory linear_bias_memory_;
  mutable std::mutex mutex_;
  mutable std::once_flag winograd_kernel_once_;
  mutable WinogradKernel winograd_kernel_ = WinogradKernel::kF2x2;
  // Per layer (convs, then the linear layer): reordered copies, alive while
  // some compiled shape holds them.
  mutable std::vector<
      std::vector<std::pair<memory::desc, std::weak_ptr<const memory>>>>
      reordered_;
};

// --------------------------------------------------------------------------
// Compilation of one shape.

// Whether two plan steps are the same convolution apart from their weights
// and buffers (so one primitive descriptor serves both).
bool SameConvolution(const ConvStep& a, const ConvStep& b) {
  return a.in_channels == b.in_channels && a.out_channels == b.out_channels &&
         a.kernel == b.kernel && a.stride == b.stride &&
         a.padding == b.padding && a.accumulate == b.accumulate &&
         a.relu == b.relu;
}

class ShapeCompiler {
 public:
  ShapeCompiler(const CpuPreparedModel& model, int batch, int64_t frames)
      : model_(model), plan_(model.plan()) {
    shape_ = std::make_unique<CompiledShape>();
    shape_->batch = batch;
    shape_->frames = frames;
  }

  std::unique_ptr<CompiledShape> Compile() {
    const int batch = shape_->batch;
    const memory::dim b = batch;
    // Virtual buffer -> slot, and what each slot holds now.
    std::vector<int> slot_of(plan_.num_buffers, -1);
    std::vector<memory::desc> desc_of(plan_.num_buffers);
    std::vector<int64_t> rows(plan_.num_buffers, 0), cols(plan_.num_buffers, 0);
    std::vector<std::vector<std::pair<memory::desc, int>>> converted(
        plan_.num_buffers);

    const memory::desc input_desc({b, 1, plan_.feature_dim, shape_->frames},
                                  DataType::f32, Tag::abcd);
    shape_->input_slot = NewSlot(input_desc.get_size());
    slot_of[plan_.input_buffer] = shape_->input_slot;
    desc_of[plan_.input_buffer] = input_desc;
    rows[plan_.input_buffer] = plan_.feature_dim;
    cols[plan_.input_buffer] = shape_->frames;

    const CpuTuning& tuning = model_.tuning();
    for (size_t i = 0; i < plan_.steps.size(); ++i) {
      // Compiling a new shape's primitives takes seconds on a busy machine.
      ThrowIfRunCancelled();
      const ConvStep& step = plan_.steps[i];
      const PreparedConv& conv = model_.convs()[i];
      const int64_t out_rows = step.OutputLength(rows[step.src_buffer]);
      const int64_t out_cols = step.OutputLength(cols[step.src_buffer]);
      VOXPRINT_CHECK(out_rows > 0 && out_cols > 0, step.name + " too short");
      const bool few_positions =
          tuning.algorithm == ConvAlgorithm::kAuto &&
          batch * out_rows * out_cols < tuning.min_winograd_positions;
      const dnnl::algorithm algorithm =
          few_positions ? dnnl::algorithm::convolution_direct : conv.algorithm;
      const memory::dims src_dims = {b, step.in_channels, rows[step.src_buffer],
                                     cols[step.src_buffer]};
      const memory::dims dst_dims = {b, step.out_channels, out_rows, out_cols};

      // Preferred: read the source as it is and write the layout policy's
      // format (or the residual's layout, which the sum post-op needs);
      // then direct with the same layouts; then any layout plus reorders.
      // oneDNN's reference kernels (what remains for odd layouts) are slower
      // than any reorder, so they are the last resort.
      const DataType type = conv.type;
      const memory::desc any_src(src_dims, type, Tag::any);
      const memory::desc any_dst(dst_dims, type, Tag::any);
      const bool blocks_fit = step.out_channels % 16 == 0;
      const memory::desc policy_dst =
          blocks_fit ? memory::desc(dst_dims, type, model_.activation_tag(type))
                     : any_dst;
      const memory::desc preferred_dst =
          step.accumulate ? desc_of[step.dst_buffer] : policy_dst;
      const dnnl::algorithm direct = dnnl::algorithm::convolution_direct;
      const std::tuple<dnnl::algorithm, memory::desc, memory::desc> attempts[] =
          {{algorithm, desc_of[step.src_buffer], preferred_dst},
           {direct, desc_of[step.src_buffer], preferred_dst},
           {algorithm, any_src, preferred_dst},
           {direct, any_src, preferred_dst},
           {algorithm, any_src, any_dst},
           {direct, any_src, any_dst}};
      std::optional<dnnl::convolution_forward::primitive_desc> pd, reference;
      dnnl::algorithm used = direct, reference_used = direct;
      for (const auto& [algorithm, src, dst] : attempts) {
        auto candidate = CreateConv(i, algorithm, src, dst);
        if (!candidate) continue;
        if (std::string(candidate->impl_info_str()).rfind("ref", 0) != 0) {
          pd = std::move(candidate);
          used = algorithm;
          break;
        }
        if (!reference) {
          reference = std::move(candidate);
          reference_used = algorithm;
        }
      }
      if (!pd) {
        pd = std::move(reference);
        used = reference_used;
      }
      VOXPRINT_CHECK(pd.has_value(), step.name + ": no convolution");
      if (step.accumulate && pd->dst_desc() != desc_of[step.dst_buffer]) {
        // No implementation writes the residual's layout: move the residual
        // into the layout the convolution prefers.
        const int moved = NewSlot(pd->dst_desc().get_size());
        AddReorder(desc_of[step.dst_buffer], slot_of[step.dst_buffer],
                   pd->dst_desc(), moved);
        slot_of[step.dst_buffer] = moved;
        desc_of[step.dst_buffer] = pd->dst_desc();
      }

      int src_slot = slot_of[step.src_buffer];
      if (pd->src_desc() != desc_of[step.src_buffer]) {
        // Reordered copies of a buffer are shared by its readers until the
        // buffer is written again.
        auto& copies = converted[step.src_buffer];
        auto found = std::find_if(copies.begin(), copies.end(), [&](auto& c) {
          return c.first == pd->src_desc();
        });
        if (found == copies.end()) {
          const int copy = NewSlot(pd->src_desc().get_size());
          AddReorder(desc_of[step.src_buffer], src_slot, pd->src_desc(), copy);
          copies.emplace_back(pd->src_desc(), copy);
          found = copies.end() - 1;
        }
        src_slot = found->second;
      }
      converted[step.dst_buffer].clear();
      if (!step.accumulate) {
        // The destination's previous content is dead: reuse its slot when
        // the buffer had one.
        if (slot_of[step.dst_buffer] < 0) slot_of[step.dst_buffer] = NewSlot(0);
        desc_of[step.dst_buffer] = pd->dst_desc();
      }
      const int dst_slot = slot_of[step.dst_buffer];
      Grow(dst_slot, pd->dst_desc().get_size());
      rows[step.dst_buffer] = out_rows;
      cols[step.dst_buffer] = out_cols;

      CompiledShape::Op op;
      op.primitive = dnnl::convolution_forward(*pd);
      op.args[DNNL_ARG_SRC] =
          memory(pd->src_desc(), model_.engine(), DNNL_MEMORY_NONE);
      op.args[DNNL_ARG_DST] =
          memory(pd->dst_desc(), model_.engine(), DNNL_MEMORY_NONE);
      op.weights = model_.Weights(i, pd->weights_desc());
      op.args[DNNL_ARG_WEIGHTS] = *op.weights;
      op.args[DNNL_ARG_BIAS] = conv.bias_memory;
      op.bindings = {{DNNL_ARG_SRC, src_slot}, {DNNL_ARG_DST, dst_slot}};
      op.conv_step = static_cast<int>(i);
      shape_->maskable &= ChannelBlock(pd->dst_desc()) > 0;
      AddScratchpad(op, pd->scratchpad_desc());
      shape_->ops.push_back(std::move(op));
      shape_->algorithms.push_back(
          step.name + ": " + AlgorithmName(used) + " " + TypeName(type) + " (" +
          pd->impl_info_str() + ", " + LayoutName(pd->src_desc()) + " -> " +
          LayoutName(pd->dst_desc()) + ")");
    }

    // The trunk output, in plain NCHW for the pooling loops.
    const int out = plan_.output_buffer;
    shape_->output_frames = cols[out];
    const memory::desc plain({b, plan_.output_channels, rows[out], cols[out]},
                             DataType::f32, Tag::abcd);
    VOXPRINT_CHECK(rows[out] == plan_.output_rows, "trunk output rows");
    if (desc_of[out] == plain) {
      shape_->output_slot = slot_of[out];
    } else {
      shape_->output_slot = NewSlot(plain.get_size());
      AddReorder(desc_of[out], slot_of[out], plain, shape_->output_slot);
    }
    return std::move(shape_);
  }

  size_t scratchpad_bytes() const { return scratchpad_bytes_; }

 private:
  int NewSlot(size_t bytes) {
    shape_->slot_bytes.push_back(bytes);
    return static_cast<int>(shape_->slot_bytes.size() - 1);
  }
  void Grow(int slot, size_t bytes) {
    shape_->slot_bytes[slot] = std::max(shape_->slot_bytes[slot], bytes);
  }

  void AddScratchpad(CompiledShape::Op& op, const memory::desc& desc) {
    if (desc.get_size() == 0) return;
    scratchpad_bytes_ = std::max(scratchpad_bytes_, desc.get_size());
    op.args[DNNL_ARG_SCRATCHPAD] =
        memory(desc, model_.engine(), DNNL_MEMORY_NONE);
    op.bindings.emplace_back(DNNL_ARG_SCRATCHPAD, kScratchpadSlot);
  }

  void AddReorder(const memory::desc& from, int from_slot,
                  const memory::desc& to, int to_slot) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const dnnl::reorder::primitive_desc pd(model_.engine(), from,
                                           model_.engine(), to, attr);
    CompiledShape::Op op;
    op.primitive = dnnl::reorder(pd);
    op.args[DNNL_ARG_FROM] = memory(from, model_.engine(), DNNL_MEMORY_NONE);
    op.args[DNNL_ARG_TO] = memory(to, model_.engine(), DNNL_MEMORY_NONE);
    op.bindings = {{DNNL_ARG_FROM, from_slot}, {DNNL_ARG_TO, to_slot}};
    AddScratchpad(op, pd.scratchpad_desc());
    std::string report =
        "reorder: " + LayoutName(from) + " -> " + LayoutName(to);
    if (from.data_type() != to.data_type())
      report += std::string(" (") + TypeName(from.data_type()) + " -> " +
                TypeName(to.data_type()) + ")";
    shape_->algorithms.push_back(report);
    shape_->ops.push_back(std::move(op));
  }

  // Empty when no implementation supports the combination.
  // CreateConvUncached, once per distinct convolution: a trunk stage repeats
  // the same two (its blocks' first and second convs), and creating a
  // Winograd primitive descriptor searches its blocking in time that grows
  // with the input's length (~10 ms for 32 channels at 21 s, each try).
  std::optional<dnnl::convolution_forward::primitive_desc> CreateConv(
      size_t index, dnnl::algorithm algorithm, const memory::desc& src,
      const memory::desc& dst) {
    const ConvStep& step = plan_.steps[index];
    for (const CreatedConv& created : created_)
      if (created.algorithm == algorithm && created.src == src &&
          created.dst == dst && SameConvolution(created.step, step))
        return created.pd;
    created_.push_back({step, algorithm, src, dst,
                        CreateConvUncached(index, algorithm, src, dst)});
    return created_.back().pd;
  }

  std::optional<dnnl::convolution_forward::primitive_desc> CreateConvUncached(
      size_t index, dnnl::algorithm algorithm, const memory::desc& src,
      const memory::desc& dst) {
    const ConvStep& step = plan_.steps[index];
    // Only the layer's precision: a bf16 layer reads f32 activations through
    // a reorder.
    const DataType type = model_.convs()[index].type;
    if (src.data_type() != type || dst.data_type() != type) return std::nullopt;
    const memory::desc weights(
        {step.out_channels, step.in_channels, step.kernel, step.kernel}, type,
        Tag::any);
    const memory::desc bias({step.out_channels}, DataType::f32, Tag::x);
    dnnl::post_ops post_ops;
    // Order matters: the residual is added before the ReLU.
    if (step.accumulate) post_ops.append_sum(1.0f);
    if (step.relu)
      post_ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(post_ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const memory::dims strides = {step.stride, step.stride};
    const memory::dims padding = {step.padding, step.padding};
    const auto describe = [&](const memory::desc& weights_desc) {
      return dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                             algorithm, src, weights_desc, bias,
                                             dst, strides, padding, padding);
    };
    // Only where oneDNN offers F(2x2) does the per-CPU choice matter (and
    // get measured): batches get F(4x4) anyway.
    const auto unwanted =
        [&](const dnnl::convolution_forward::primitive_desc& pd) {
          return IsF2x2Winograd(pd) &&
                 model_.winograd_kernel() == WinogradKernel::kF4x4;
        };
    // Winograd weights already transformed for another input length, when
    // the kernel takes them for this one: a new length would otherwise pay
    // the layer's weight transform again (~40 ms for 256 channels).
    if (algorithm == dnnl::algorithm::convolution_winograd) {
      for (const memory::desc& held : model_.HeldWinogradLayouts(index)) {
        try {
          dnnl::convolution_forward::primitive_desc pd(describe(held), attr,
                                                       model_.engine());
          if (!unwanted(pd)) return pd;
        } catch (const dnnl::error& e) {
          if (e.status != dnnl_unimplemented) throw;
        }
      }
    }
    try {
      const auto desc = describe(weights);
      dnnl::convolution_forward::primitive_desc pd(desc, attr, model_.engine());
      if (unwanted(pd))
        return F4x4Winograd(desc, attr, model_.engine()).value_or(pd);
      return pd;
    } catch (const dnnl::error& e) {
      if (e.status != dnnl_unimplemented) throw;
    }
    return std::nullopt;
  }

 public:
  static constexpr int kScratchpadSlot = -1;

 private:
  struct CreatedConv {
    ConvStep step;
    dnnl::algorithm algorithm;
    memory::desc src, dst;
    std::optional<dnnl::convolution_forward::primitive_desc> pd;
  };

  const CpuPreparedModel& model_;
  const NetworkPlan& plan_;
  std::unique_ptr<CompiledShape> shape_;
  size_t scratchpad_bytes_ = 0;
  std::vector<CreatedConv> created_;  // CreateConv's answers for this shape
};

// --------------------------------------------------------------------------
// Session.

class CpuSession final : public Session {
 public:
  explicit CpuSession(std::shared_ptr<const CpuPreparedModel> model)
      : model_(std::move(model)), stream_(model_->engine()) {}

  std::vector<float> Run(std::span<const float> features, int batch,
                         int64_t frames) override {
    const NetworkPlan& plan = model_->plan();
    plan.CheckFeatures(features, batch, frames);
    UseThreads(model_->num_threads());
    try {
      return RunChecked(features, batch, frames);
    } catch (const dnnl::error& e) {
      RethrowDnnl(e, "cpu backend run");
    }
  }

  // Compiles (and caches) a shape without running it.
  const CompiledShape& Shape(int batch, int64_t frames) {
    for (auto it = shapes_.begin(); it != shapes_.end(); ++it) {
      if ((*it)->batch == batch && (*it)->frames == frames) {
        shapes_.splice(shapes_.begin(), shapes_, it);
        return *shapes_.front();
      }
    }
    ShapeCompiler compiler(*model_, batch, frames);
    std::unique_ptr<CompiledShape> shape = compiler.Compile();
    scratchpad_bytes_ =
        std::max(scratchpad_bytes_, compiler.scratchpad_bytes());
    shapes_.push_front(std::move(shape));
    while (static_cast<int>(shapes_.size()) >
           model_->tuning().max_cached_shapes)
      shapes_.pop_back();
    last_algorithms_ = shapes_.front()->algorithms;
    return *shapes_.front();
  }

  const std::vector<std::string>& last_algorithms() const {
    return last_algorithms_;
  }
  const std::vector<int>& last_mixed_runs() const { return last_mixed_runs_; }

  // Long inputs run as time tiles like Run()'s, each fetched from `source`
  // just before it runs, so only one tile of features is held.
  static constexpr int64_t kStreamingTileFrames = 2048;
  std::vector<float> RunWithFeatureSource(
      int64_t frames, int bins, const FeatureSource& source) override {
    const NetworkPlan& plan = model_->plan();
    if (bins != plan.feature_dim || frames < 1)
      throw Error(ErrorCode::kInvalidArgument,
                  "features: " + std::to_string(frames) + " frames of " +
                      std::to_string(bins) + " bins, the model takes " +
                      std::to_string(plan.feature_dim));
    if (frames <= model_->tuning().max_untiled_frames)
      return Session::RunWithFeatureSource(frames, bins, source);
    UseThreads(model_->num_threads());
    try {
      const int64_t total_out = plan.OutputFrames(frames);
      VOXPRINT_CHECK(total_out > 0, "network output is empty");
      const size_t row_count =
          static_cast<size_t>(plan.output_channels) * plan.output_rows;
      PoolingState state;
      state.mean.assign(row_count, 0.0);
      state.m2.assign(row_count, 0.0);
      // Narrower tiles than Run()'s: the activations dominate the memory of
      // a long run (~60 KB per tile frame); the halo stays a small share.
      const int64_t halo = 2 * (plan.receptive_left + plan.receptive_right) +
                           4 * plan.time_stride;
      const int64_t narrow = std::max(
          halo, std::min(model_->tuning().tile_frames, kStreamingTileFrames));
      stream_tile_frames_ =
          CeilDiv(narrow, plan.time_stride) * plan.time_stride;
      RunTiles(
          {}, frames, 0, 1, total_out,
          [&](const TileOutput& tile, int64_t begin, int64_t end) {
            MergeFrames(tile, begin, end, state);
          },
          &source);
      std::vector<float> embedding(plan.embedding_dim);
      Embed(state, 1, embedding);
      return embedding;
    } catch (const dnnl::error& e) {
      RethrowDnnl(e, "cpu backend run");
    }
  }

  // One trunk run (tiled like Run()'s) feeds every window: each window's
  // statistics start when a tile first reaches it and are embedded and freed
  // once the tiles have passed its end, so only the windows in flight hold
  // memory.
  std::vector<float> RunSharedTrunk(
      std::span<const float> features, int64_t frames,
      std::span<const FrameWindow> windows) override {
    const NetworkPlan& plan = model_->plan();
    plan.CheckFeatures(features, 1, frames);
    const int64_t total_out = plan.OutputFrames(frames);
    if (total_out < 1)
      throw Error(ErrorCode::kInvalidArgument,
                  "features: " + std::to_string(frames) +
                      " frames are too few for the network");
    // Window -> trunk output frames [first, last): those of a run on the
    // window alone, at the window's place in the input's output grid.
    struct Range {
      int64_t first = 0;
      int64_t last = 0;
    };
    std::vector<Range> ranges;
    ranges.reserve(windows.size());
    for (const FrameWindow& window : windows) {
      const int64_t count = plan.OutputFrames(window.frames);
      if (window.first_frame < 0 || window.first_frame >= frames || count < 1)
        throw Error(ErrorCode::kInvalidArgument,
                    "shared-trunk window at frame " +
                        std::to_string(window.first_frame) + " of " +
                        std::to_string(window.frames) +
                        " frames is outside the input's " +
                        std::to_string(frames) + " frames or too short");
      Range range;
      range.first =
          std::min(total_out - 1, (2 * window.first_frame + plan.time_stride) /
                                      (2 * plan.time_stride));
      range.last = std::min(total_out, range.first + count);
      if (!ranges.empty() && (range.first < ranges.back().first ||
                              range.last < ranges.back().last))
        throw Error(ErrorCode::kInvalidArgument,
                    "shared-trunk windows must be sorted by start and end");
      ranges.push_back(range);
    }
    if (ranges.empty()) return {};
    UseThreads(model_->num_threads());
    try {
      const size_t row_count =
          static_cast<size_t>(plan.output_channels) * plan.output_rows;
      std::vector<float> embeddings(windows.size() * plan.embedding_dim);
      std::vector<PoolingState> states(windows.size());
      size_t done = 0;  // windows embedded so far (in order of their end)
      const auto consume = [&](const TileOutput& tile, int64_t begin,
                               int64_t end) {
        for (size_t w = done; w < ranges.size() && ranges[w].first < end; ++w) {
          const int64_t from = std::max(begin, ranges[w].first);
          const int64_t to = std::min(end, ranges[w].last);
          if (from >= to) continue;
          if (states[w].mean.empty()) {
            states[w].mean.assign(row_count, 0.0);
            states[w].m2.assign(row_count, 0.0);
          }
          MergeFrames(tile, from, to, states[w]);
        }
        for (; done < ranges.size() && ranges[done].last <= end; ++done) {
          Embed(states[done], 1,
                std::span<float>(embeddings)
                    .subspan(done * plan.embedding_dim, plan.embedding_dim));
          states[done] = PoolingState();
        }
      };
      RunTiles(features, frames, 0, 1, total_out, consume);
      VOXPRINT_CHECK(done == windows.size(), "shared-trunk windows left over");
      return embeddings;
    } catch (const dnnl::error& e) {
      RethrowDnnl(e, "cpu backend run");
    }
  }

  // Inputs sorted by length are cut into runs of similar length; each run
  // pads its inputs to one width and zeroes, after every convolution, the
  // columns past each input's own output length: the next convolution then
  // reads zeros there, as the zero padding of a run on the input alone.
  std::vector<float> RunMixed(std::span<const Input> inputs) override {
    const NetworkPlan& plan = model_->plan();
    const CpuTuning& tuning = model_->tuning();
    for (const Input& input : inputs) {
      plan.CheckFeatures(input.features, 1, input.frames);
      if (plan.OutputFrames(input.frames) < 1)
        throw Error(ErrorCode::kInvalidArgument,
                    "features: " + std::to_string(input.frames) +
                        " frames are too few for the network");
    }
    std::vector<int64_t> lengths;
    for (const Input& input : inputs) lengths.push_back(input.frames);
    // A long (tiled) input runs alone.
    const auto runs = PlanMixedRuns(
        lengths, {tuning.max_mixed_batch_frames, tuning.max_mixed_padding,
                  tuning.max_untiled_frames});
    UseThreads(model_->num_threads());
    last_mixed_runs_.clear();
    try {
      std::vector<float> embeddings(inputs.size() * plan.embedding_dim);
      const auto row = [&](size_t input) {
        return std::span<float>(embeddings)
            .subspan(input * plan.embedding_dim, plan.embedding_dim);
      };
      for (const std::vector<size_t>& run : runs) {
        ThrowIfRunCancelled();
        last_mixed_runs_.push_back(static_cast<int>(run.size()));
        if (run.size() == 1) {
          const Input& input = inputs[run[0]];
          const std::vector<float> one =
              RunChecked(input.features, 1, input.frames);
          std::copy(one.begin(), one.end(), row(run[0]).begin());
        } else {
          RunMasked(inputs, run, row);
        }
      }
      return embeddings;
    } catch (const dnnl::error& e) {
      RethrowDnnl(e, "cpu backend run");
    }
  }

 private:
  // One batch of inputs `run` (sorted by length) padded to a common width.
  void RunMasked(std::span<const Input> inputs, std::span<const size_t> run,
                 const std::function<std::span<float>(size_t)>& row) {
    const NetworkPlan& plan = model_->plan();
    const int count = static_cast<int>(run.size());
    const int64_t width = MixedWidth(inputs[run.back()].frames);
    const CompiledShape& shape = Shape(count, width);
    if (!shape.maskable) {  // some layout oneDNN chose: one by one then
      last_mixed_runs_.back() = 1;
      last_mixed_runs_.insert(last_mixed_runs_.end(), run.size() - 1, 1);
      for (const size_t i : run) {
        const std::vector<float> one =
            RunChecked(inputs[i].features, 1, inputs[i].frames);
        std::copy(one.begin(), one.end(), row(i).begin());
      }
      return;
    }
    Bind(shape);

    // Valid columns per virtual buffer and item, starting with the input's.
    std::vector<std::vector<int64_t>> valid(plan.num_buffers,
                                            std::vector<int64_t>(count, 0));
    const int bins = plan.feature_dim;
    float* input = slots_[shape.input_slot].floats();
    std::memset(input, 0, sizeof(float) * count * bins * width);
    for (int b = 0; b < count; ++b) {
      const Input& item = inputs[run[b]];
      valid[plan.input_buffer][b] = item.frames;
      TransposeFrames(item.features.data(), item.frames, bins, width,
                      input + static_cast<size_t>(b) * bins * width);
    }
    for (const CompiledShape::Op& op : shape.ops) {
      if (current_run_cancel.Cancelled()) {  // as in RunTile
        stream_.wait();
        ThrowIfRunCancelled();
      }
      op.primitive.execute(stream_, op.args);
      if (op.conv_step < 0) continue;
      stream_.wait();
      const ConvStep& step = plan.steps[op.conv_step];
      for (int b = 0; b < count; ++b)
        valid[step.dst_buffer][b] =
            step.OutputLength(valid[step.src_buffer][b]);
      const memory& dst = op.args.at(DNNL_ARG_DST);
      ZeroColumnsFrom(dst.get_desc(), dst.get_data_handle(),
                      valid[step.dst_buffer]);
    }
    stream_.wait();

    const size_t row_count =
        static_cast<size_t>(plan.output_channels) * plan.output_rows;
    const float* output = slots_[shape.output_slot].floats();
    for (int b = 0; b < count; ++b) {
      PoolingState state;
      state.mean.assign(row_count, 0.0);
      state.m2.assign(row_count, 0.0);
      const TileOutput item{output + b * row_count * shape.output_frames,
                            shape.output_frames, 0};
      MergeFrames(item, 0, plan.OutputFrames(inputs[run[b]].frames), state);
      Embed(state, 1, row(run[b]));
    }
  }

  // Per row (batch item, channel * rows + row): running mean and M2 over the
  // frames seen so far (Chan et al. merge of per-tile two-pass statistics).
  struct PoolingState {
    int64_t count = 0;
    std::vector<double> mean;
    std::vector<double> m2;
  };

  std::vector<float> RunChecked(std::span<const float> features, int batch,
                                int64_t frames) {
    const NetworkPlan& plan = model_->plan();
    const CpuTuning& tuning = model_->tuning();
    const int64_t total_out = plan.OutputFrames(frames);
    VOXPRINT_CHECK(total_out > 0, "network output is empty");
    const bool tiled = frames > tuning.max_untiled_frames;
    const int64_t width = tiled ? tuning.tile_frames : frames;
    const int chunk = static_cast<int>(
        std::clamp<int64_t>(tuning.max_batch_frames / width, 1, batch));

    std::vector<float> embeddings(static_cast<size_t>(batch) *
                                  plan.embedding_dim);
    const size_t row_count =
        static_cast<size_t>(plan.output_channels) * plan.output_rows;
    for (int b0 = 0; b0 < batch; b0 += chunk) {
      const int count = std::min(chunk, batch - b0);
      PoolingState state;
      state.mean.assign(row_count * count, 0.0);
      state.m2.assign(row_count * count, 0.0);
      RunTiles(features, frames, b0, count, total_out,
               [&](const TileOutput& tile, int64_t begin, int64_t end) {
                 MergeFrames(tile, begin, end, state);
               });
      Embed(state, count,
            std::span<float>(embeddings)
                .subspan(static_cast<size_t>(b0) * plan.embedding_dim,
                         static_cast<size_t>(count) * plan.embedding_dim));
    }
    return embeddings;
  }

  // Trunk output of the tile just run: per item and channel row, plain
  // [rows, columns]; column c is global trunk output frame first_frame + c.
  // MergeFrames reads as many rows as the statistics it merges into hold.
  struct TileOutput {
    const float* data = nullptr;
    int64_t columns = 0;
    int64_t first_frame = 0;
  };
  // Receives a tile's output and the global trunk output frames
  // [begin, end) to take from it (each frame is taken from one tile only).
  using TileConsumer =
      std::function<void(const TileOutput&, int64_t begin, int64_t end)>;

  // Overlapping tiles of tile_frames input frames starting at multiples of
  // the total stride, so each tile's downsampled grids align with the
  // untiled ones; a trunk output frame is taken from a tile only when its
  // whole receptive field lies inside the tile (or the tile reaches the
  // input's edge, where the zero padding is the same). An input of at most
  // max_untiled_frames is one tile: the untiled run.
  void RunTiles(std::span<const float> features, int64_t frames, int b0,
                int count, int64_t total_out, const TileConsumer& consume,
                const FeatureSource* source = nullptr) {
    const NetworkPlan& plan = model_->plan();
    const int64_t stride = plan.time_stride;
    const int64_t width = source != nullptr ? stream_tile_frames_
                          : frames <= model_->tuning().max_untiled_frames
                              ? frames
                              : model_->tuning().tile_frames;
    int64_t taken = 0;
    int64_t start = 0;
    while (taken < total_out) {
      // A cancelled caller stops here, within a tile of its run.
      ThrowIfRunCancelled();
      const int64_t end = std::min(frames, start + width);
      const int64_t first =
          start == 0 ? 0 : CeilDiv(start + plan.receptive_left, stride);
      const int64_t last =
          end == frames ? total_out
                        : FloorDiv(end - 1 - plan.receptive_right, stride) + 1;
      VOXPRINT_CHECK(first <= taken && last > taken, "time tiles leave a gap");
      if (source != nullptr) {
        // Streaming (batch 1): this tile's rows come from the source.
        source_tile_.resize(static_cast<size_t>(end - start) *
                            plan.feature_dim);
        (*source)(start, end - start, source_tile_.data());
      }
      consume(RunTile(features, frames, b0, count, start, end,
                      source != nullptr ? source_tile_.data() : nullptr),
              taken, last);
      taken = last;
      const int64_t next =
          FloorDiv(stride * taken - plan.receptive_left, stride) * stride;
      VOXPRINT_CHECK(next > start || taken == total_out,
                     "time tiles do not advance");
      start = next;
    }
  }

  // Runs the trunk on frames [start, end) of items [b0, b0+count).
  TileOutput RunTile(std::span<const float> features, int64_t frames, int b0,
                     int count, int64_t start, int64_t end,
                     const float* tile_rows = nullptr) {
    const NetworkPlan& plan = model_->plan();
    const int64_t width = end - start;
    const CompiledShape& shape = Shape(count, width);
    VOXPRINT_CHECK(start % plan.time_stride == 0, "tile off the time grid");
    Bind(shape);

    // [frames, bins] per item -> [bins, frames]: frequency is the height.
    const int bins = plan.feature_dim;
    float* input = slots_[shape.input_slot].floats();
    for (int b = 0; b < count; ++b) {
      const float* src =
          tile_rows != nullptr
              ? tile_rows + static_cast<size_t>(b) * width * bins
              : features.data() +
                    (static_cast<size_t>(b0 + b) * frames + start) * bins;
      TransposeFrames(src, width, bins, width,
                      input + static_cast<size_t>(b) * bins * width);
    }
    for (const CompiledShape::Op& op : shape.ops) {
      // Between layers too: one tile of a large batch takes seconds on a
      // busy machine. The CPU stream runs each primitive before returning,
      // so stopping here leaves nothing running; the next run rewrites the
      // buffers from its input.
      if (current_run_cancel.Cancelled()) {
        stream_.wait();
        ThrowIfRunCancelled();
      }
      op.primitive.execute(stream_, op.args);
    }
    stream_.wait();
    return {slots_[shape.output_slot].floats(), shape.output_frames,
            start / plan.time_stride};
  }

  // Merges global trunk output frames [begin, end) of the tile's first
  // state.mean.size() rows into the running statistics (two passes over the
  // tile, then Chan et al.'s merge).
  static void MergeFrames(const TileOutput& tile, int64_t begin, int64_t end,
                          PoolingState& state) {
    const int64_t local_begin = begin - tile.first_frame;
    const int64_t n = end - begin;
    VOXPRINT_CHECK(local_begin >= 0 && n > 0 && local_begin + n <= tile.columns,
                   "frames outside the tile's trunk output");
    for (size_t r = 0; r < state.mean.size(); ++r) {
      const float* x = tile.data + r * tile.columns + local_begin;
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j) sum += x[j];
      const double mean = sum / n;
      double m2 = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const double d = x[j] - mean;
        m2 += d * d;
      }
      const double total = static_cast<double>(state.count + n);
      const double delta = mean - state.mean[r];
      state.mean[r] += delta * n / total;
      state.m2[r] += m2 + delta * delta * state.count * n / total;
    }
    state.count += n;
  }

  // Statistics (all means, then all unbiased stds) -> linear layer.
  void Embed(const PoolingState& state, int count, std::span<float> out) {
    const NetworkPlan& plan = model_->plan();
    const size_t rows = state.mean.size() / count;
    CompiledLinear& linear = Linear(count);
    const size_t stats_bytes = sizeof(float) * count * plan.pooled_dim;
    stats_.Reserve(stats_bytes);
    embed_out_.Reserve(out.size_bytes());
    scratchpad_.Reserve(linear.scratchpad_bytes);
    float* stats = stats_.floats();
    // torch's unbiased std over a single frame is NaN (0/0); keep it.
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (int b = 0; b < count; ++b) {
      float* means = stats + static_cast<size_t>(b) * plan.pooled_dim;
      float* stds = means + rows;
      for (size_t r = 0; r < rows; ++r) {
        const size_t i = b * rows + r;
        means[r] = static_cast<float>(state.mean[i]);
        stds[r] = static_cast<float>(
            state.count > 1 ? std::sqrt(state.m2[i] / (state.count - 1)) : nan);
      }
    }
    linear.op.args[DNNL_ARG_SRC].set_data_handle(stats_.data());
    linear.op.args[DNNL_ARG_DST].set_data_handle(embed_out_.data());
    if (linear.scratchpad_bytes > 0)
      linear.op.args[DNNL_ARG_SCRATCHPAD].set_data_handle(scratchpad_.data());
    linear.op.primitive.execute(stream_, linear.op.args);
    stream_.wait();
    std::memcpy(out.data(), embed_out_.data(), out.size_bytes());
  }

  CompiledLinear& Linear(int batch) {
    auto it = linear_.find(batch);
    if (it != linear_.end()) return it->second;
    const NetworkPlan& plan = model_->plan();
    const memory::dim b = batch;
    const memory::desc src({b, plan.pooled_dim}, DataType::f32, Tag::ab);
    // The model's own layout: a blocked copy would cost a 5 MB reorder on
    // the first embedding (start-up latency) for a layer that takes 0.3 ms.
    const memory::desc weights({plan.embedding_dim, plan.pooled_dim},
                               DataType::f32, Tag::ab);
    const memory::desc bias({plan.embedding_dim}, DataType::f32, Tag::x);
    const memory::desc dst({b, plan.embedding_dim}, DataType::f32, Tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const dnnl::inner_product_forward::desc desc(
        dnnl::prop_kind::forward_inference, src, weights, bias, dst);
    const dnnl::inner_product_forward::primitive_desc pd(desc, attr,
                                                         model_->engine());
    CompiledLinear linear;
    linear.op.primitive = dnnl::inner_product_forward(pd);
    linear.op.args[DNNL_ARG_SRC] =
        memory(src, model_->engine(), DNNL_MEMORY_NONE);
    linear.op.args[DNNL_ARG_DST] =
        memory(dst, model_->engine(), DNNL_MEMORY_NONE);
    linear.op.weights =
        model_->Weights(model_->convs().size(), pd.weights_desc());
    linear.op.args[DNNL_ARG_WEIGHTS] = *linear.op.weights;
    linear.op.args[DNNL_ARG_BIAS] = model_->linear_bias();
    linear.scratchpad_bytes = pd.scratchpad_desc().get_size();
    if (linear.scratchpad_bytes > 0)
      linear.op.args[DNNL_ARG_SCRATCHPAD] =
          memory(pd.scratchpad_desc(), model_->engine(), DNNL_MEMORY_NONE);
    return linear_.emplace(batch, std::move(linear)).first->second;
  }

  // Points the shape's memories at the session's buffers (grown if needed).
  void Bind(const CompiledShape& shape) {
    if (slots_.size() < shape.slot_bytes.size())
      slots_.resize(shape.slot_bytes.size());
    for (size_t i = 0; i < shape.slot_bytes.size(); ++i)
      slots_[i].Reserve(shape.slot_bytes[i]);
    scratchpad_.Reserve(scratchpad_bytes_);
    for (const CompiledShape::Op& op : shape.ops) {
      for (const auto& [arg, slot] : op.bindings) {
        void* data = slot == ShapeCompiler::kScratchpadSlot
                         ? scratchpad_.data()
                         : slots_[slot].data();
        op.args.at(arg).set_data_handle(data);
      }
    }
  }

  std::shared_ptr<const CpuPreparedModel> model_;
  dnnl::stream stream_;
  std::list<std::unique_ptr<CompiledShape>> shapes_;  // most recent first
  std::unordered_map<int, CompiledLinear> linear_;
  std::vector<AlignedBuffer> slots_;
  AlignedBuffer scratchpad_;
  size_t scratchpad_bytes_ = 0;
  AlignedBuffer stats_;
  AlignedBuffer embed_out_;
  std::vector<std::string> last_algorithms_;
  std::vector<int> last_mixed_runs_;
  std::vector<float> source_tile_;  // RunWithFeatureSource's current tile
  int64_t stream_tile_frames_ = 0;  // and its tile width
};

std::unique_ptr<Session> CpuPreparedModel::NewSession() const {
  return std::make_unique<CpuSession>(shared_from_this());
}

// --------------------------------------------------------------------------

class CpuBackend final : public Backend {
 public:
  CpuBackend(const BackendOptions& options, const CpuTuning& tuning)
      : options_(options), tuning_(tuning) {
    if (options.num_threads < 0)
      throw Error(
          ErrorCode::kInvalidArgument,
          "backend option num_threads: " + std::to_string(options.num_threads) +
              " (expected 0 for all cores, or a positive count)");
    if (options.precision == "tf32")
      throw Error(ErrorCode::kInvalidArgument,
                  "backend option precision: tf32 runs on the cuda backend "
                  "only (the cpu backend has fp32, bf16 and mixed)");
    const std::optional<int> first_bf16_stage =
        FirstBf16Stage(options.precision);
    if (!first_bf16_stage)
      throw Error(ErrorCode::kInvalidArgument,
                  "backend option precision: \"" + options.precision +
                      "\" (expected fp32, bf16 or mixed)");
    first_bf16_stage_ = *first_bf16_stage;
    num_threads_ =
        options.num_threads > 0 ? options.num_threads : omp_get_num_procs();
    try {
      description_ = LibraryDescription();
      if (first_bf16_stage_ != kNoBf16 && !NativeBf16())
        throw Error(
            ErrorCode::kInvalidArgument,
            "backend option precision: " + options.precision +
                " needs a CPU with native bf16 instructions (AVX512_BF16 or "
                "AMX); this one has " +
                std::string(IsaName(dnnl::get_effective_cpu_isa())) +
                " (oneDNN would emulate bf16, slower than fp32)");
    } catch (const dnnl::error& e) {
      RethrowDnnl(e, "cpu backend");
    }
  }

  BackendInfo Info() const override {
    BackendInfo info;
    info.name = "cpu";
    info.device_index = 0;
    info.num_threads = num_threads_;
    info.description = description_;
    info.precision = options_.precision;
    return info;
  }

  std::shared_ptr<const PreparedModel> Prepare(
      const model::ResNetWeights& weights) const override {
    return Prepare(model::ResNetWeights(weights));
  }
  std::shared_ptr<const PreparedModel> Prepare(
      model::ResNetWeights&& weights) const override {
    UseThreads(num_threads_);
    try {
      return std::make_shared<CpuPreparedModel>(
          std::move(weights), num_threads_, tuning_, first_bf16_stage_);
    } catch (const dnnl::error& e) {
      RethrowDnnl(e, "cpu backend prepare");
    }
  }

 private:
  BackendOptions options_;
  CpuTuning tuning_;
  int first_bf16_stage_ = kNoBf16;
  int num_threads_ = 1;
  std::string description_;
};

}  // namespace

std::unique_ptr<Backend> CreateCpuBackend(const BackendOptions& options,
                                          const CpuTuning& tuning) {
  return std::make_unique<CpuBackend>(options, tuning);
}

bool NativeBf16Available() { return NativeBf16(); }

bool PrecisionRunsBf16(const std::string& precision) {
  const std::optional<int> first_bf16_stage = FirstBf16Stage(precision);
  return first_bf16_stage && *first_bf16_stage != kNoBf16;
}

size_t PreparedWeightBytes(const PreparedModel& model) {
  if (const auto* cpu = dynamic_cast<const CpuPreparedModel*>(&model))
    return cpu->WeightBytes();
  return 0;
}

std::vector<std::string> LastLayerAlgorithms(const Session& session) {
  if (const auto* cpu = dynamic_cast<const CpuSession*>(&session))
    return cpu->last_algorithms();
  return {};
}

std::vector<int> LastMixedRuns(const Session& session) {
  if (const auto* cpu = dynamic_cast<const CpuSession*>(&session))
    return cpu->last_mixed_runs();
  return {};
}

}  // namespace voxprint::backends::cpu
