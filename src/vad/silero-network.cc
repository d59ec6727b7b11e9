#include "vad/silero-network.h"

#include <algorithm>
#include <cmath>
#include <numbers>

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

struct SileroNetwork::Block {
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
  std::vector<float> pre_gates = std::vector<float>(kBlockChunks * kGates);
  std::vector<float> fft_scratch = std::vector<float>(kFftScratchFloats);

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
    twiddles_.resize(kFftSize);
    for (int m = 0; m < kFftSize / 2; ++m) {
      const double angle = 2.0 * std::numbers::pi * m / kFftSize;
      twiddles_[m] = static_cast<float>(std::cos(angle));
      twiddles_[kFftSize / 2 + m] = static_cast<float>(std::sin(angle));
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

void SileroNetwork::Encode(Block& block, int chunks) const {
  // The model pads its input on the right by reflection (x[n-1+k] =
  // x[n-1-k]) so that its last STFT frame is full.
  for (int chunk = 0; chunk < chunks; ++chunk) {
    float* padded = block.Window(chunk);
    for (int k = 1; k <= kReflectPadSamples; ++k)
      padded[kWindowSamples - 1 + k] = padded[kWindowSamples - 1 - k];
  }

  // The magnitudes of the STFT, [chunk][frame][bin]: one call per frame
  // position, chunks as rows.
  constexpr std::ptrdiff_t kMagnitudeRow = kStftFrames * kStftBins;
  for (int frame = 0; frame < kStftFrames; ++frame) {
    const float* x = block.padded.data() + frame * kStftHop;
    float* magnitude = block.magnitude.data() + frame * kStftBins;
    if (UsesFft()) {
      kernels_->stft_magnitude(x, kPaddedSamples, chunks, window_.data(),
                               twiddles_.data(), magnitude, kMagnitudeRow,
                               block.fft_scratch.data());
      continue;
    }
    const std::ptrdiff_t spectrum_row =
        static_cast<std::ptrdiff_t>(kStftFrames) * stft_columns_;
    block.spectrum.resize(kBlockChunks * spectrum_row);
    float* spectrum = block.spectrum.data() + frame * stft_columns_;
    const GemmSegment segment{x, kPaddedSamples, stft_basis_t_.data(),
                              kStftFilterLength};
    kernels_->gemm({&segment, 1, chunks, stft_columns_, stft_columns_,
                    stft_zero_bias_.data(), false, spectrum, spectrum_row});
    for (int chunk = 0; chunk < chunks; ++chunk) {
      const float* re = spectrum + chunk * spectrum_row;
      const float* im = re + kStftBins;
      float* out = magnitude + chunk * kMagnitudeRow;
      for (int bin = 0; bin < kStftBins; ++bin)
        out[bin] = std::sqrt(re[bin] * re[bin] + im[bin] * im[bin]);
    }
  }

  // Four Conv1d (kernel 3, padding 1) + ReLU, [chunk][frame][channel]: one
  // product per output frame, over the input frames its taps reach.
  const float* in = block.magnitude.data();
  float* out = block.conv_a.data();
  int frames = kStftFrames;
  for (const Conv& conv : encoder_) {
    const int out_frames = (frames + 2 - kConvKernel) / conv.stride + 1;
    for (int t = 0; t < out_frames; ++t) {
      GemmSegment segments[kConvKernel];
      int count = 0;
      for (int k = 0; k < kConvKernel; ++k) {
        const int source = t * conv.stride + k - 1;
        if (source < 0 || source >= frames) continue;  // zero padding
        segments[count++] = {
            in + source * conv.in_channels, frames * conv.in_channels,
            conv.weight_t.data() + k * conv.in_channels * conv.out_channels,
            conv.in_channels};
      }
      kernels_->gemm({segments, count, chunks, conv.out_channels,
                      conv.out_channels, conv.bias.data(), true,
                      out + t * conv.out_channels,
                      out_frames * conv.out_channels});
    }
    in = out;
    out =
        out == block.conv_a.data() ? block.conv_b.data() : block.conv_a.data();
    frames = out_frames;
  }
  // One frame of 128 channels is left: the LSTM's input, projected.
  const GemmSegment features{in, kLstmHidden, weight_ih_t_.data(), kLstmHidden};
  kernels_->gemm({&features, 1, chunks, kGates, kGates, gate_bias_.data(),
                  false, block.pre_gates.data(), kGates});
}

void SileroNetwork::Decode(const Block& block, int chunks, State& state,
                           float* probabilities) const {
  for (int chunk = 0; chunk < chunks; ++chunk) {
    const float logit = kernels_->lstm_step(
        block.pre_gates.data() + chunk * kGates, weight_hh_t_.data(),
        head_weight_.data(), head_bias_, state.h.data(), state.c.data(),
        state.gates.data());
    probabilities[chunk] = 1.0f / (1.0f + std::exp(-logit));
  }
}

std::vector<float> SileroNetwork::Run(std::span<const float> samples,
                                      const CancelToken& cancel) const {
  const size_t chunks = (samples.size() + kVadChunkSamples - 1) /
                        static_cast<size_t>(kVadChunkSamples);
  std::vector<float> probabilities(chunks);
  Block block;
  State state;
  for (size_t first = 0; first < chunks; first += kBlockChunks) {
    cancel.ThrowIfCancelled("voice activity detection");
    const int count =
        static_cast<int>(std::min<size_t>(kBlockChunks, chunks - first));
    for (int i = 0; i < count; ++i) {
      // The window starts 64 samples (the context) before its chunk; zeros
      // before the audio and after its end.
      const int64_t start = static_cast<int64_t>(first + i) * kVadChunkSamples -
                            kVadContextSamples;
      const int64_t begin = std::max<int64_t>(start, 0);
      const int64_t end = std::min<int64_t>(
          start + kWindowSamples, static_cast<int64_t>(samples.size()));
      float* window = block.Window(i);
      std::fill(window, window + kWindowSamples, 0.0f);
      std::copy(samples.begin() + begin, samples.begin() + end,
                window + (begin - start));
    }
    Encode(block, count);
    Decode(block, count, state, probabilities.data() + first);
  }
  return probabilities;
}

SileroNetwork::Stream::Stream(const SileroNetwork& network)
    : network_(network),
      block_(std::make_unique<Block>()),
      state_(std::make_unique<State>()),
      window_(kWindowSamples, 0.0f) {}

SileroNetwork::Stream::~Stream() = default;

void SileroNetwork::Stream::EndChunk(std::vector<float>* out) {
  std::copy(window_.begin(), window_.end(), block_->Window(pending_));
  ++pending_;
  std::copy(window_.end() - kVadContextSamples, window_.end(), window_.begin());
  filled_ = 0;
  if (pending_ == kBlockChunks) Flush(out);
}

void SileroNetwork::Stream::Flush(std::vector<float>* out) {
  if (pending_ == 0) return;
  network_.Encode(*block_, pending_);
  const size_t first = out->size();
  out->resize(first + pending_);
  network_.Decode(*block_, pending_, *state_, out->data() + first);
  pending_ = 0;
}

void SileroNetwork::Stream::Push(std::span<const float> samples,
                                 std::vector<float>* out) {
  while (!samples.empty()) {
    const size_t take = std::min(samples.size(), kVadChunkSamples - filled_);
    std::copy_n(samples.data(), take,
                window_.begin() + kVadContextSamples + filled_);
    filled_ += take;
    samples = samples.subspan(take);
    if (filled_ == static_cast<size_t>(kVadChunkSamples)) EndChunk(out);
  }
  Flush(out);
}

void SileroNetwork::Stream::Finish(std::vector<float>* out) {
  if (filled_ > 0) {
    std::fill(window_.begin() + kVadContextSamples + filled_, window_.end(),
              0.0f);
    EndChunk(out);
  }
  Flush(out);
}

}  // namespace voxprint::vad
