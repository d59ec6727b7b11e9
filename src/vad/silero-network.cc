#include "vad/silero-network.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "voxprint/vad.h"

namespace voxprint::vad {
namespace {

constexpr int kWindowSamples = kVadContextSamples + kVadChunkSamples;  // 576
constexpr int kPaddedSamples = kWindowSamples + kReflectPadSamples;    // 640
constexpr int kStftFrames =
    (kPaddedSamples - kStftFilterLength) / kStftHop + 1;  // 4
constexpr int kGates = 4 * kLstmHidden;
constexpr int kMaxChannels = 2 * kStftBins;  // widest activation (258)
// Chunks between two looks at the cancel token (~8 s of audio).
constexpr size_t kChunksPerCancelCheck = 256;

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

// The two hot functions are also compiled for AVX2 + FMA and the CPU picks
// at run time (1.5x faster where it has them; results stay within the
// 1e-4 of ONNX Runtime either way).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VOXPRINT_VAD_HOT \
  __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VOXPRINT_VAD_HOT
#endif

// Activations are time-major: [time][channel].
struct SileroNetwork::Scratch {
  std::array<float, kPaddedSamples> padded{};
  std::array<float, kStftFrames * kMaxChannels> a{};
  std::array<float, kStftFrames * kMaxChannels> b{};
  std::array<float, kLstmHidden> features{};
  std::array<float, kLstmHidden> h{};
  std::array<float, kLstmHidden> c{};
  std::array<float, kGates> gates{};
};

SileroNetwork::SileroNetwork(const SileroWeights& weights) {
  constexpr int kBasisRows = 2 * kStftBins;
  stft_basis_t_.resize(static_cast<size_t>(kStftFilterLength) * kBasisRows);
  for (int row = 0; row < kBasisRows; ++row)
    for (int k = 0; k < kStftFilterLength; ++k)
      stft_basis_t_[k * kBasisRows + row] =
          weights.stft_basis[row * kStftFilterLength + k];

  for (const ConvLayer& layer : weights.encoder) {
    Conv conv{layer.in_channels, layer.out_channels, layer.stride, {}, {}};
    conv.weight_t.resize(layer.weight.size());
    for (int o = 0; o < layer.out_channels; ++o)
      for (int i = 0; i < layer.in_channels; ++i)
        for (int k = 0; k < layer.kernel; ++k)
          conv.weight_t[(i * layer.kernel + k) * layer.out_channels + o] =
              layer.weight[(o * layer.in_channels + i) * layer.kernel + k];
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

VOXPRINT_VAD_HOT void SileroNetwork::Encode(const float* window,
                                            Scratch& s) const {
  // The model pads its input on the right by reflection (x[n-1+k] =
  // x[n-1-k]) so that its last STFT frame is full.
  std::memcpy(s.padded.data(), window, kWindowSamples * sizeof(float));
  for (int k = 1; k <= kReflectPadSamples; ++k)
    s.padded[kWindowSamples - 1 + k] = s.padded[kWindowSamples - 1 - k];

  // STFT as a strided convolution, then the magnitude of each bin.
  constexpr int kBasisRows = 2 * kStftBins;
  float* spectrum = s.b.data();
  for (int frame = 0; frame < kStftFrames; ++frame) {
    float* out = spectrum + frame * kBasisRows;
    std::fill(out, out + kBasisRows, 0.0f);
    const float* x = s.padded.data() + frame * kStftHop;
    for (int k = 0; k < kStftFilterLength; ++k) {
      const float xk = x[k];
      const float* basis = stft_basis_t_.data() + k * kBasisRows;
      for (int row = 0; row < kBasisRows; ++row) out[row] += basis[row] * xk;
    }
  }
  float* magnitude = s.a.data();
  for (int frame = 0; frame < kStftFrames; ++frame) {
    const float* re = spectrum + frame * kBasisRows;
    const float* im = re + kStftBins;
    for (int bin = 0; bin < kStftBins; ++bin)
      magnitude[frame * kStftBins + bin] =
          std::sqrt(re[bin] * re[bin] + im[bin] * im[bin]);
  }

  // Four Conv1d (kernel 3, padding 1) + ReLU.
  float* in = s.a.data();
  float* out = s.b.data();
  int frames = kStftFrames;
  for (const Conv& conv : encoder_) {
    const int out_frames = (frames + 2 - 3) / conv.stride + 1;
    for (int t = 0; t < out_frames; ++t) {
      float* y = out + t * conv.out_channels;
      std::copy(conv.bias.begin(), conv.bias.end(), y);
      for (int k = 0; k < 3; ++k) {
        const int source = t * conv.stride + k - 1;
        if (source < 0 || source >= frames) continue;
        const float* x = in + source * conv.in_channels;
        for (int i = 0; i < conv.in_channels; ++i) {
          const float xi = x[i];
          const float* w =
              conv.weight_t.data() + (i * 3 + k) * conv.out_channels;
          for (int o = 0; o < conv.out_channels; ++o) y[o] += w[o] * xi;
        }
      }
      for (int o = 0; o < conv.out_channels; ++o) y[o] = std::max(y[o], 0.0f);
    }
    std::swap(in, out);
    frames = out_frames;
  }
  // One frame of 128 channels is left.
  std::copy(in, in + kLstmHidden, s.features.begin());
}

VOXPRINT_VAD_HOT float SileroNetwork::Decode(Scratch& s) const {
  std::copy(gate_bias_.begin(), gate_bias_.end(), s.gates.begin());
  for (int i = 0; i < kLstmHidden; ++i) {
    const float xi = s.features[i];
    const float hi = s.h[i];
    const float* wx = weight_ih_t_.data() + i * kGates;
    const float* wh = weight_hh_t_.data() + i * kGates;
    for (int j = 0; j < kGates; ++j) s.gates[j] += wx[j] * xi + wh[j] * hi;
  }
  // PyTorch gate order: input, forget, cell, output.
  const float* gi = s.gates.data();
  const float* gf = gi + kLstmHidden;
  const float* gg = gf + kLstmHidden;
  const float* go = gg + kLstmHidden;
  float logit = head_bias_;
  for (int j = 0; j < kLstmHidden; ++j) {
    s.c[j] = Sigmoid(gf[j]) * s.c[j] + Sigmoid(gi[j]) * std::tanh(gg[j]);
    s.h[j] = Sigmoid(go[j]) * std::tanh(s.c[j]);
    logit += head_weight_[j] * std::max(s.h[j], 0.0f);
  }
  return Sigmoid(logit);
}

std::vector<float> SileroNetwork::Run(std::span<const float> samples,
                                      const CancelToken& cancel) const {
  const size_t chunks = (samples.size() + kVadChunkSamples - 1) /
                        static_cast<size_t>(kVadChunkSamples);
  std::vector<float> probabilities(chunks);
  Scratch scratch;
  std::array<float, kWindowSamples> window{};  // context starts at zero
  for (size_t chunk = 0; chunk < chunks; ++chunk) {
    if (chunk % kChunksPerCancelCheck == 0)
      cancel.ThrowIfCancelled("voice activity detection");
    const size_t start = chunk * kVadChunkSamples;
    const size_t available =
        std::min<size_t>(kVadChunkSamples, samples.size() - start);
    float* fresh = window.data() + kVadContextSamples;
    std::copy_n(samples.data() + start, available, fresh);
    std::fill(fresh + available, fresh + kVadChunkSamples, 0.0f);
    Encode(window.data(), scratch);
    probabilities[chunk] = Decode(scratch);
    // The next chunk's context: the last 64 samples of this window.
    std::copy(window.end() - kVadContextSamples, window.end(), window.begin());
  }
  return probabilities;
}

SileroNetwork::Stream::Stream(const SileroNetwork& network)
    : network_(network),
      scratch_(std::make_unique<Scratch>()),
      window_(kWindowSamples, 0.0f) {}

SileroNetwork::Stream::~Stream() = default;

void SileroNetwork::Stream::Step(std::vector<float>* out) {
  network_.Encode(window_.data(), *scratch_);
  out->push_back(network_.Decode(*scratch_));
  std::copy(window_.end() - kVadContextSamples, window_.end(), window_.begin());
  filled_ = 0;
}

void SileroNetwork::Stream::Push(std::span<const float> samples,
                                 std::vector<float>* out) {
  while (!samples.empty()) {
    const size_t take = std::min(samples.size(), kVadChunkSamples - filled_);
    std::copy_n(samples.data(), take,
                window_.begin() + kVadContextSamples + filled_);
    filled_ += take;
    samples = samples.subspan(take);
    if (filled_ == static_cast<size_t>(kVadChunkSamples)) Step(out);
  }
}

void SileroNetwork::Stream::Finish(std::vector<float>* out) {
  if (filled_ == 0) return;
  std::fill(window_.begin() + kVadContextSamples + filled_, window_.end(),
            0.0f);
  Step(out);
}

}  // namespace voxprint::vad
