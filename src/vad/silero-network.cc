#include "vad/silero-network.h"

#include <fftw3.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <new>
#include <numbers>
#include <thread>

#include "features/fftw-planner.h"
#include "voxprint/error.h"
#include "voxprint/vad.h"

namespace voxprint::vad {
namespace {

constexpr int kWindowSamples = kVadContextSamples + kVadChunkSamples;  // 576
constexpr int kPaddedSamples = kWindowSamples + kReflectPadSamples;    // 640
constexpr int kStftFrames =
    (kPaddedSamples - kStftFilterLength) / kStftHop + 1;  // 4
constexpr int kBasisRows = 2 * kStftBins;  // real parts, then imaginary
constexpr int kGates = 4 * kLstmHidden;
constexpr int kConvKernel = 3;  // padding 1
constexpr int kBlock = SileroNetwork::kBlockChunks;

// Working arrays start on 64-byte boundaries in every thread, as FFTW's plan
// (made on such arrays) requires of the arrays it is executed on.
struct FreeFloats {
  void operator()(float* p) const { std::free(p); }
};
using Floats = std::unique_ptr<float[], FreeFloats>;

Floats AllocateFloats(size_t count) {
  constexpr size_t kAlign = 64;
  const size_t bytes = (count * sizeof(float) + kAlign - 1) / kAlign * kAlign;
  auto* p = static_cast<float*>(std::aligned_alloc(kAlign, bytes));
  if (p == nullptr) throw std::bad_alloc();
  std::fill(p, p + count, 0.0f);
  return Floats(p);
}

// c[r][n] = bias[n] (0 without one) + sum over k of a[r][k] b[k][n], for r <
// rows, row-major, b's rows `cols` apart; by oneDNN on this thread alone (see
// OneOpenMpThread).
void Product(int rows, int cols, int depth, const float* a, int lda,
             const float* b, const float* bias, float* c, int ldc) {
  if (bias != nullptr)
    for (int r = 0; r < rows; ++r) std::copy_n(bias, cols, c + r * ldc);
  const dnnl_status_t status =
      dnnl_sgemm('N', 'N', rows, cols, depth, 1.0f, a, lda, b, cols,
                 bias != nullptr ? 1.0f : 0.0f, c, ldc);
  if (status != dnnl_success)
    throw Error(ErrorCode::kInternal,
                "voice activity detection: oneDNN sgemm failed (status " +
                    std::to_string(static_cast<int>(status)) + ")");
}

// While alive, oneDNN's products on this thread run on it alone: the VAD's
// parallelism is its own helper threads, and a product on one thread sums
// in the same order every time. Restores the thread's OpenMP setting.
class OneOpenMpThread {
 public:
  OneOpenMpThread() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneOpenMpThread() { omp_set_num_threads(saved_); }
  OneOpenMpThread(const OneOpenMpThread&) = delete;
  OneOpenMpThread& operator=(const OneOpenMpThread&) = delete;

 private:
  const int saved_;
};

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// By exp: 4 times faster than std::tanh (glibc's goes through expm1), within
// 1e-7 of it.
float Tanh(float x) { return 2.0f * Sigmoid(2.0f * x) - 1.0f; }

// The window w when basis row b is w[k] cos(2 pi b k / N) and row
// kStftBins + b is -w[k] sin(2 pi b k / N) (or +: the magnitudes are the
// same), as numpy's FFT of the identity times a window gives; else empty.
std::vector<float> WindowOfDftBasis(const std::vector<float>& basis) {
  constexpr int n = kStftFilterLength;
  // The file holds float32 products of float32 factors.
  constexpr double kTolerance = 1e-6;
  std::vector<float> window(basis.begin(), basis.begin() + n);  // b = 0
  double error_minus = 0.0, error_plus = 0.0;
  for (int b = 0; b < kStftBins; ++b) {
    for (int k = 0; k < n; ++k) {
      const double angle = 2.0 * std::numbers::pi * ((b * k) % n) / n;
      const double re = basis[b * n + k];
      const double im = basis[(kStftBins + b) * n + k];
      const double w = window[k];
      const double re_error = std::abs(re - w * std::cos(angle));
      error_minus =
          std::max({error_minus, re_error, std::abs(im + w * std::sin(angle))});
      error_plus =
          std::max({error_plus, re_error, std::abs(im - w * std::sin(angle))});
    }
  }
  if (std::min(error_minus, error_plus) > kTolerance) return {};
  return window;
}

}  // namespace

// One plan for one frame, executed frame by frame (fftwf_execute_dft_r2c is
// thread-safe; the planner is not, hence the lock).
struct SileroNetwork::FftPlan {
  fftwf_plan plan = nullptr;

  FftPlan() {
    const Floats in = AllocateFloats(kStftFilterLength);
    const Floats out = AllocateFloats(kBasisRows);
    std::lock_guard lock(FftwPlannerMutex());
    plan = fftwf_plan_dft_r2c_1d(kStftFilterLength, in.get(),
                                 reinterpret_cast<fftwf_complex*>(out.get()),
                                 FFTW_ESTIMATE);
    if (plan == nullptr)
      throw Error(ErrorCode::kInternal,
                  "voice activity detection: FFTW could not plan a " +
                      std::to_string(kStftFilterLength) + "-point FFT");
  }
  ~FftPlan() {
    std::lock_guard lock(FftwPlannerMutex());
    fftwf_destroy_plan(plan);
  }
  FftPlan(const FftPlan&) = delete;
  FftPlan& operator=(const FftPlan&) = delete;
};

struct SileroNetwork::Scratch {
  // Per chunk: context + chunk + reflection padding.
  Floats padded = AllocateFloats(kBlock * kPaddedSamples);
  Floats fft_in = AllocateFloats(kStftFilterLength);
  Floats fft_out = AllocateFloats(kBasisRows);  // complex bins
  // Matrix STFT only: [chunk][frame][basis row].
  Floats spectrum = AllocateFloats(kBlock * kStftFrames * kBasisRows);
  Floats magnitude = AllocateFloats(kBlock * kStftFrames * kStftBins);
  // A convolution's input taps side by side, [chunk][frame][tap][channel].
  Floats taps = AllocateFloats(kBlock * kStftFrames * kConvKernel * kStftBins);
  // Convolution outputs, [chunk][frame][channel], at most 4 x 128 a chunk.
  Floats conv_a = AllocateFloats(kBlock * kStftFrames * kLstmHidden);
  Floats conv_b = AllocateFloats(kBlock * kStftFrames * kLstmHidden);

  float* Window(int chunk) {
    return padded.get() + static_cast<size_t>(chunk) * kPaddedSamples;
  }
};

struct SileroNetwork::State {
  std::vector<float> h = std::vector<float>(kLstmHidden);
  std::vector<float> c = std::vector<float>(kLstmHidden);
  std::vector<float> gates = std::vector<float>(kGates);
};

SileroNetwork::SileroNetwork(const SileroWeights& weights,
                             const SileroNetworkOptions& options) {
  if (!options.matrix_stft) window_ = WindowOfDftBasis(weights.stft_basis);
  if (!window_.empty()) {
    fft_ = std::make_unique<const FftPlan>();
  } else {
    stft_basis_t_.resize(static_cast<size_t>(kStftFilterLength) * kBasisRows);
    for (int row = 0; row < kBasisRows; ++row)
      for (int k = 0; k < kStftFilterLength; ++k)
        stft_basis_t_[k * kBasisRows + row] =
            weights.stft_basis[row * kStftFilterLength + k];
  }

  int channels = kStftBins, frames = kStftFrames;
  for (const ConvLayer& layer : weights.encoder) {
    VOXPRINT_CHECK(layer.kernel == kConvKernel &&
                       layer.in_channels == channels &&
                       layer.out_channels <= kLstmHidden,
                   "unexpected Silero encoder layer");
    Conv conv{layer.in_channels, layer.out_channels, layer.stride, {}, {}};
    conv.weight_t.resize(layer.weight.size());
    for (int o = 0; o < layer.out_channels; ++o)
      for (int i = 0; i < layer.in_channels; ++i)
        for (int k = 0; k < kConvKernel; ++k)
          conv.weight_t[(k * layer.in_channels + i) * layer.out_channels + o] =
              layer.weight[(o * layer.in_channels + i) * kConvKernel + k];
    conv.bias = layer.bias;
    encoder_.push_back(std::move(conv));
    channels = layer.out_channels;
    frames = (frames + 2 - kConvKernel) / layer.stride + 1;
  }
  VOXPRINT_CHECK(channels == kLstmHidden && frames == 1,
                 "unexpected Silero encoder output");

  weight_ih_t_.resize(weights.lstm_weight_ih.size());
  weight_hh_t_.resize(weights.lstm_weight_hh.size());
  for (int j = 0; j < kGates; ++j)
    for (int i = 0; i < kLstmHidden; ++i) {
      weight_ih_t_[i * kGates + j] =
          weights.lstm_weight_ih[j * kLstmHidden + i];
      weight_hh_t_[i * kGates + j] =
          weights.lstm_weight_hh[j * kLstmHidden + i];
    }
  gate_bias_.resize(kGates);
  for (int j = 0; j < kGates; ++j)
    gate_bias_[j] = weights.lstm_bias_ih[j] + weights.lstm_bias_hh[j];
  head_weight_ = weights.head_weight;
  head_bias_ = weights.head_bias;
}

SileroNetwork::~SileroNetwork() = default;
SileroNetwork::SileroNetwork(SileroNetwork&&) noexcept = default;

void SileroNetwork::Encode(const WindowFiller& fill, int64_t first, int count,
                           Scratch& scratch, float* pre_gates) const {
  // The model pads its input on the right by reflection (x[n-1+k] =
  // x[n-1-k]) so that its last STFT frame is full. Rows past `count` are
  // silence: every product has kBlock rows.
  for (int chunk = 0; chunk < kBlock; ++chunk) {
    float* padded = scratch.Window(chunk);
    if (chunk < count)
      fill(first + chunk, padded);
    else
      std::fill(padded, padded + kWindowSamples, 0.0f);
    for (int k = 1; k <= kReflectPadSamples; ++k)
      padded[kWindowSamples - 1 + k] = padded[kWindowSamples - 1 - k];
  }

  // The magnitudes of the STFT, [chunk][frame][bin].
  constexpr int kMagnitudeRow = kStftFrames * kStftBins;
  float* magnitude = scratch.magnitude.get();
  if (UsesFft()) {
    float* in = scratch.fft_in.get();
    const float* bins = scratch.fft_out.get();
    for (int chunk = 0; chunk < kBlock; ++chunk)
      for (int frame = 0; frame < kStftFrames; ++frame) {
        const float* x = scratch.Window(chunk) + frame * kStftHop;
        for (int k = 0; k < kStftFilterLength; ++k) in[k] = x[k] * window_[k];
        fftwf_execute_dft_r2c(
            fft_->plan, in,
            reinterpret_cast<fftwf_complex*>(scratch.fft_out.get()));
        float* out = magnitude + chunk * kMagnitudeRow + frame * kStftBins;
        for (int bin = 0; bin < kStftBins; ++bin)
          out[bin] = std::sqrt(bins[2 * bin] * bins[2 * bin] +
                               bins[2 * bin + 1] * bins[2 * bin + 1]);
      }
  } else {
    // One product per frame position, chunks as rows.
    constexpr int kSpectrumRow = kStftFrames * kBasisRows;
    float* spectrum = scratch.spectrum.get();
    for (int frame = 0; frame < kStftFrames; ++frame)
      Product(kBlock, kBasisRows, kStftFilterLength,
              scratch.padded.get() + frame * kStftHop, kPaddedSamples,
              stft_basis_t_.data(), nullptr, spectrum + frame * kBasisRows,
              kSpectrumRow);
    for (int row = 0; row < kBlock * kStftFrames; ++row) {
      const float* re = spectrum + row * kBasisRows;
      const float* im = re + kStftBins;
      for (int bin = 0; bin < kStftBins; ++bin)
        magnitude[row * kStftBins + bin] =
            std::sqrt(re[bin] * re[bin] + im[bin] * im[bin]);
    }
  }

  // Four Conv1d (kernel 3, padding 1) + ReLU, [chunk][frame][channel]: the
  // taps each output frame reaches side by side (zeros past the edges), then
  // one product with the kernel.
  const float* in = magnitude;
  float* out = scratch.conv_a.get();
  int frames = kStftFrames;
  for (const Conv& conv : encoder_) {
    const int out_frames = (frames + 2 - kConvKernel) / conv.stride + 1;
    float* taps = scratch.taps.get();
    for (int chunk = 0; chunk < kBlock; ++chunk)
      for (int t = 0; t < out_frames; ++t)
        for (int k = 0; k < kConvKernel; ++k) {
          float* to = taps + ((chunk * out_frames + t) * kConvKernel + k) *
                                 conv.in_channels;
          const int source = t * conv.stride + k - 1;
          if (source < 0 || source >= frames)
            std::fill(to, to + conv.in_channels, 0.0f);
          else
            std::copy_n(in + (chunk * frames + source) * conv.in_channels,
                        conv.in_channels, to);
        }
    const int rows = kBlock * out_frames;
    const int depth = kConvKernel * conv.in_channels;
    Product(rows, conv.out_channels, depth, taps, depth, conv.weight_t.data(),
            conv.bias.data(), out, conv.out_channels);
    for (int i = 0; i < rows * conv.out_channels; ++i)
      out[i] = std::max(out[i], 0.0f);
    in = out;
    out = out == scratch.conv_a.get() ? scratch.conv_b.get()
                                      : scratch.conv_a.get();
    frames = out_frames;
  }
  // One frame of 128 channels is left: the LSTM's input, projected.
  Product(kBlock, kGates, kLstmHidden, in, kLstmHidden, weight_ih_t_.data(),
          gate_bias_.data(), pre_gates, kGates);
}

void SileroNetwork::Decode(const float* pre_gates, int count, State& state,
                           float* probabilities) const {
  float* h = state.h.data();
  float* c = state.c.data();
  float* gates = state.gates.data();
  for (int chunk = 0; chunk < count; ++chunk) {
    // gates = pre_gates + w_hh h (PyTorch's gate order: i, f, g, o).
    Product(1, kGates, kLstmHidden, h, kLstmHidden, weight_hh_t_.data(),
            pre_gates + chunk * kGates, gates, kGates);
    float logit = head_bias_;
    for (int j = 0; j < kLstmHidden; ++j) {
      const float input = Sigmoid(gates[j]);
      const float forget = Sigmoid(gates[kLstmHidden + j]);
      const float cell = Tanh(gates[2 * kLstmHidden + j]);
      const float output = Sigmoid(gates[3 * kLstmHidden + j]);
      c[j] = forget * c[j] + input * cell;
      h[j] = output * Tanh(c[j]);
      logit += head_weight_[j] * std::max(h[j], 0.0f);
    }
    probabilities[chunk] = Sigmoid(logit);
  }
}

namespace {

// The blocks of one Process call shared by its threads: each block is
// encoded by whichever thread takes it into slot block % slots, and decoded
// by the calling thread in order, which frees the slot.
class BlockQueue {
 public:
  BlockQueue(int64_t blocks, int slots) : blocks_(blocks), slots_(slots) {
    encoded_.assign(slots, -1);
  }

  // The next block to encode, waiting for a free slot; -1 when all are
  // taken or the run stopped.
  int64_t TakeToEncode() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return stopped_ || CanEncode(); });
    return stopped_ || next_encode_ == blocks_ ? -1 : next_encode_++;
  }
  void Encoded(int64_t block) {
    {
      std::lock_guard lock(mutex_);
      encoded_[block % slots_] = block;
    }
    changed_.notify_all();
  }
  // For the decoding thread: true when `block` is encoded; else gives it a
  // block to encode in *encode (or -1 after waiting for a change).
  // Rethrows a helper's failure.
  bool ReadyOrWork(int64_t block, int64_t* encode) {
    std::unique_lock lock(mutex_);
    if (failure_) std::rethrow_exception(failure_);
    *encode = -1;
    if (encoded_[block % slots_] == block) return true;
    if (CanEncode() && next_encode_ < blocks_) {
      *encode = next_encode_++;
      return false;
    }
    changed_.wait(lock);
    return false;
  }
  void Decoded(int64_t block) {
    {
      std::lock_guard lock(mutex_);
      encoded_[block % slots_] = -1;
      next_decode_ = block + 1;
    }
    changed_.notify_all();
  }
  void Stop() {
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
    }
    changed_.notify_all();
  }
  // A helper's exception, for the decoding thread; stops the run.
  void Fail(std::exception_ptr failure) {
    {
      std::lock_guard lock(mutex_);
      if (!failure_) failure_ = failure;
      stopped_ = true;
    }
    changed_.notify_all();
  }

 private:
  bool CanEncode() const {
    return next_encode_ == blocks_ || next_encode_ < next_decode_ + slots_;
  }
  const int64_t blocks_;
  const int slots_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<int64_t> encoded_;  // per slot: the block it holds, or -1
  int64_t next_encode_ = 0;
  int64_t next_decode_ = 0;
  bool stopped_ = false;
  std::exception_ptr failure_;
};

}  // namespace

void SileroNetwork::Process(int64_t chunks, const WindowFiller& fill,
                            int threads, const CancelToken& cancel,
                            State& state, float* probabilities) const {
  const int64_t blocks = (chunks + kBlockChunks - 1) / kBlockChunks;
  const auto block_size = [&](int64_t block) {
    return static_cast<int>(
        std::min<int64_t>(kBlockChunks, chunks - block * kBlockChunks));
  };
  const OneOpenMpThread one_thread;
  const int helpers = static_cast<int>(std::min<int64_t>(
      std::clamp(threads, 1, kMaxUsefulThreads) - 1, blocks - 1));
  if (helpers <= 0) {
    Scratch scratch;
    std::vector<float> pre_gates(kBlockChunks * kGates);
    for (int64_t block = 0; block < blocks; ++block) {
      cancel.ThrowIfCancelled("voice activity detection");
      Encode(fill, block * kBlockChunks, block_size(block), scratch,
             pre_gates.data());
      Decode(pre_gates.data(), block_size(block), state,
             probabilities + block * kBlockChunks);
    }
    return;
  }

  // Room for every thread to be a few blocks ahead of the decoding.
  const int slots = 4 * (helpers + 1);
  std::vector<float> pre_gates(static_cast<size_t>(slots) * kBlockChunks *
                               kGates);
  const auto slot_of = [&](int64_t block) {
    return pre_gates.data() + (block % slots) * kBlockChunks * kGates;
  };
  BlockQueue queue(blocks, slots);
  std::vector<std::thread> workers;
  // Stops and joins the helpers however this function ends.
  struct Joiner {
    BlockQueue& queue;
    std::vector<std::thread>& workers;
    ~Joiner() {
      queue.Stop();
      for (std::thread& worker : workers) worker.join();
    }
  } joiner{queue, workers};
  for (int i = 0; i < helpers; ++i)
    workers.emplace_back([&] {
      const OneOpenMpThread one_thread;
      // Without its memory a helper takes no block: the others do its share.
      std::unique_ptr<Scratch> scratch;
      try {
        scratch = std::make_unique<Scratch>();
      } catch (const std::bad_alloc&) {
        return;
      }
      try {
        for (int64_t block; (block = queue.TakeToEncode()) >= 0;) {
          Encode(fill, block * kBlockChunks, block_size(block), *scratch,
                 slot_of(block));
          queue.Encoded(block);
        }
      } catch (...) {
        queue.Fail(std::current_exception());
      }
    });

  Scratch scratch;
  for (int64_t block = 0; block < blocks;) {
    cancel.ThrowIfCancelled("voice activity detection");
    int64_t encode = -1;
    if (queue.ReadyOrWork(block, &encode)) {
      Decode(slot_of(block), block_size(block), state,
             probabilities + block * kBlockChunks);
      queue.Decoded(block);
      ++block;
    } else if (encode >= 0) {
      Encode(fill, encode * kBlockChunks, block_size(encode), scratch,
             slot_of(encode));
      queue.Encoded(encode);
    }
  }
}

std::vector<float> SileroNetwork::Run(std::span<const float> samples,
                                      const CancelToken& cancel,
                                      int threads) const {
  const int64_t chunks =
      static_cast<int64_t>((samples.size() + kVadChunkSamples - 1) /
                           static_cast<size_t>(kVadChunkSamples));
  std::vector<float> probabilities(chunks);
  const int64_t total = static_cast<int64_t>(samples.size());
  // A window starts 64 samples (the context) before its chunk; zeros before
  // the audio and after its end.
  const WindowFiller fill = [&](int64_t chunk, float* window) {
    const int64_t start = chunk * kVadChunkSamples - kVadContextSamples;
    const int64_t begin = std::max<int64_t>(start, 0);
    const int64_t end = std::min<int64_t>(start + kWindowSamples, total);
    std::fill(window, window + kWindowSamples, 0.0f);
    std::copy(samples.begin() + begin, samples.begin() + end,
              window + (begin - start));
  };
  State state;
  Process(chunks, fill, threads, cancel, state, probabilities.data());
  return probabilities;
}

SileroNetwork::Stream::Stream(const SileroNetwork& network, int threads)
    : network_(network),
      threads_(threads),
      state_(std::make_unique<State>()),
      pending_(kVadContextSamples, 0.0f) {}

SileroNetwork::Stream::~Stream() = default;

void SileroNetwork::Stream::Flush(std::vector<float>* out) {
  const int64_t chunks = static_cast<int64_t>(
      (pending_.size() - kVadContextSamples) / kVadChunkSamples);
  if (chunks == 0) return;
  const WindowFiller fill = [&](int64_t chunk, float* window) {
    std::copy_n(pending_.begin() + chunk * kVadChunkSamples, kWindowSamples,
                window);
  };
  const size_t first = out->size();
  out->resize(first + chunks);
  network_.Process(chunks, fill, threads_, CancelToken{}, *state_,
                   out->data() + first);
  // Keep the last chunk's context and the partial chunk.
  pending_.erase(pending_.begin(),
                 pending_.begin() + chunks * kVadChunkSamples);
}

void SileroNetwork::Stream::Push(std::span<const float> samples,
                                 std::vector<float>* out) {
  const size_t full =
      kVadContextSamples +
      static_cast<size_t>(kStreamBatchChunks) * kVadChunkSamples;
  while (!samples.empty()) {
    const size_t take = std::min(samples.size(), full - pending_.size());
    pending_.insert(pending_.end(), samples.begin(), samples.begin() + take);
    samples = samples.subspan(take);
    if (pending_.size() == full) Flush(out);
  }
}

void SileroNetwork::Stream::Finish(std::vector<float>* out) {
  const size_t partial = (pending_.size() - kVadContextSamples) %
                         static_cast<size_t>(kVadChunkSamples);
  if (partial > 0)
    pending_.resize(pending_.size() + kVadChunkSamples - partial, 0.0f);
  Flush(out);
}

}  // namespace voxprint::vad
