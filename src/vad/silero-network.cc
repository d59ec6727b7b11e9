#include "vad/silero-network.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <new>
#include <numbers>
#include <thread>

#include "voxprint/error.h"
#include "voxprint/vad.h"

namespace voxprint::vad {
namespace {

constexpr int kWindowSamples = kVadContextSamples + kVadChunkSamples;  // 576
constexpr int kPaddedSamples = kWindowSamples + kReflectPadSamples;    // 640
constexpr int kStftFrames =
    (kPaddedSamples - kStftFilterLength) / kStftHop + 1;  // 4
constexpr int kGates = 4 * kLstmHidden;
constexpr int kConvKernel = 3;  // padding 1
static_assert(kGates == kLstmGates && kStftFilterLength == kFftSize);

int RoundUp(int n, int multiple) {
  return (n + multiple - 1) / multiple * multiple;
}

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

struct SileroNetwork::Scratch {
  // Per chunk: context + chunk + reflection padding.
  std::vector<float> padded = std::vector<float>(kBlockChunks * kPaddedSamples);
  std::vector<float> spectrum;  // matrix STFT only: [chunk][frame][column]
  std::vector<float> magnitude =
      std::vector<float>(kBlockChunks * kStftFrames * kStftBins);
  // Convolution outputs, [chunk][frame][channel], at most 4 x 128 a chunk.
  std::vector<float> conv_a =
      std::vector<float>(kBlockChunks * kStftFrames * kLstmHidden);
  std::vector<float> conv_b =
      std::vector<float>(kBlockChunks * kStftFrames * kLstmHidden);
  std::vector<float> fft_scratch = std::vector<float>(kFftScratchFloats);

  explicit Scratch(int stft_columns)
      : spectrum(static_cast<size_t>(kBlockChunks) * kStftFrames *
                 stft_columns) {}
  float* Window(int chunk) {
    return padded.data() + static_cast<size_t>(chunk) * kPaddedSamples;
  }
};

struct SileroNetwork::State {
  std::vector<float> h = std::vector<float>(kLstmHidden);
  std::vector<float> c = std::vector<float>(kLstmHidden);
  std::vector<float> gates = std::vector<float>(kGates);
};

SileroNetwork::SileroNetwork(const SileroWeights& weights,
                             const SileroNetworkOptions& options)
    : kernels_(options.kernels ? options.kernels : &BestSileroKernels()) {
  if (!options.matrix_stft) window_ = WindowOfDftBasis(weights.stft_basis);
  if (!window_.empty()) {
    constexpr int kAngles = kFftSize / 2 + 1;
    twiddles_.resize(2 * kAngles);
    for (int m = 0; m < kAngles; ++m) {
      const double angle = 2.0 * std::numbers::pi * m / kFftSize;
      twiddles_[m] = static_cast<float>(std::cos(angle));
      twiddles_[kAngles + m] = static_cast<float>(std::sin(angle));
    }
  } else {
    constexpr int kBasisRows = 2 * kStftBins;
    stft_columns_ = RoundUp(kBasisRows, kGemmColumnAlign);
    stft_basis_t_.assign(static_cast<size_t>(kStftFilterLength) * stft_columns_,
                         0.0f);
    for (int row = 0; row < kBasisRows; ++row)
      for (int k = 0; k < kStftFilterLength; ++k)
        stft_basis_t_[k * stft_columns_ + row] =
            weights.stft_basis[row * kStftFilterLength + k];
    stft_zero_bias_.assign(stft_columns_, 0.0f);
  }

  for (const ConvLayer& layer : weights.encoder) {
    VOXPRINT_CHECK(layer.kernel == kConvKernel &&
                       layer.out_channels % kGemmColumnAlign == 0,
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
  }

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

void SileroNetwork::Encode(const WindowFiller& fill, int64_t first, int count,
                           Scratch& scratch, float* pre_gates) const {
  // The model pads its input on the right by reflection (x[n-1+k] =
  // x[n-1-k]) so that its last STFT frame is full.
  for (int chunk = 0; chunk < count; ++chunk) {
    float* padded = scratch.Window(chunk);
    fill(first + chunk, padded);
    for (int k = 1; k <= kReflectPadSamples; ++k)
      padded[kWindowSamples - 1 + k] = padded[kWindowSamples - 1 - k];
  }

  // The magnitudes of the STFT, [chunk][frame][bin]: one call per frame
  // position, chunks as rows.
  constexpr std::ptrdiff_t kMagnitudeRow = kStftFrames * kStftBins;
  for (int frame = 0; frame < kStftFrames; ++frame) {
    const float* x = scratch.padded.data() + frame * kStftHop;
    float* magnitude = scratch.magnitude.data() + frame * kStftBins;
    if (UsesFft()) {
      kernels_->stft_magnitude(x, kPaddedSamples, count, window_.data(),
                               twiddles_.data(), magnitude, kMagnitudeRow,
                               scratch.fft_scratch.data());
      continue;
    }
    const std::ptrdiff_t spectrum_row =
        static_cast<std::ptrdiff_t>(kStftFrames) * stft_columns_;
    float* spectrum = scratch.spectrum.data() + frame * stft_columns_;
    const GemmSegment segment{x, kPaddedSamples, stft_basis_t_.data(),
                              kStftFilterLength};
    kernels_->gemm({&segment, 1, count, stft_columns_, stft_columns_,
                    stft_zero_bias_.data(), false, spectrum, spectrum_row});
    for (int chunk = 0; chunk < count; ++chunk) {
      const float* re = spectrum + chunk * spectrum_row;
      const float* im = re + kStftBins;
      float* out = magnitude + chunk * kMagnitudeRow;
      for (int bin = 0; bin < kStftBins; ++bin)
        out[bin] = std::sqrt(re[bin] * re[bin] + im[bin] * im[bin]);
    }
  }

  // Four Conv1d (kernel 3, padding 1) + ReLU, [chunk][frame][channel]: one
  // product per output frame, over the input frames its taps reach.
  const float* in = scratch.magnitude.data();
  float* out = scratch.conv_a.data();
  int frames = kStftFrames;
  for (const Conv& conv : encoder_) {
    const int out_frames = (frames + 2 - kConvKernel) / conv.stride + 1;
    for (int t = 0; t < out_frames; ++t) {
      GemmSegment segments[kConvKernel];
      int taps = 0;
      for (int k = 0; k < kConvKernel; ++k) {
        const int source = t * conv.stride + k - 1;
        if (source < 0 || source >= frames) continue;  // zero padding
        segments[taps++] = {
            in + source * conv.in_channels, frames * conv.in_channels,
            conv.weight_t.data() + k * conv.in_channels * conv.out_channels,
            conv.in_channels};
      }
      kernels_->gemm({segments, taps, count, conv.out_channels,
                      conv.out_channels, conv.bias.data(), true,
                      out + t * conv.out_channels,
                      out_frames * conv.out_channels});
    }
    in = out;
    out = out == scratch.conv_a.data() ? scratch.conv_b.data()
                                       : scratch.conv_a.data();
    frames = out_frames;
  }
  // One frame of 128 channels is left: the LSTM's input, projected.
  const GemmSegment features{in, kLstmHidden, weight_ih_t_.data(), kLstmHidden};
  kernels_->gemm({&features, 1, count, kGates, kGates, gate_bias_.data(), false,
                  pre_gates, kGates});
}

void SileroNetwork::Decode(const float* pre_gates, int count, State& state,
                           float* probabilities) const {
  for (int chunk = 0; chunk < count; ++chunk) {
    const float logit = kernels_->lstm_step(
        pre_gates + chunk * kGates, weight_hh_t_.data(), head_weight_.data(),
        head_bias_, state.h.data(), state.c.data(), state.gates.data());
    probabilities[chunk] = 1.0f / (1.0f + std::exp(-logit));
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
  bool ReadyOrWork(int64_t block, int64_t* encode) {
    std::unique_lock lock(mutex_);
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
  const int helpers = static_cast<int>(std::min<int64_t>(
      std::clamp(threads, 1, kMaxUsefulThreads) - 1, blocks - 1));
  if (helpers <= 0) {
    Scratch scratch(stft_columns_);
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
      // Without its memory a helper takes no block: the others do its share.
      std::unique_ptr<Scratch> scratch;
      try {
        scratch = std::make_unique<Scratch>(stft_columns_);
      } catch (const std::bad_alloc&) {
        return;
      }
      for (int64_t block; (block = queue.TakeToEncode()) >= 0;) {
        Encode(fill, block * kBlockChunks, block_size(block), *scratch,
               slot_of(block));
        queue.Encoded(block);
      }
    });

  Scratch scratch(stft_columns_);
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
