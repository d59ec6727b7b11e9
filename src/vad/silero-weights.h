// The weights of Silero VAD v5's 16 kHz network, read from its ONNX file.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace voxprint::vad {

// One Conv1d of the encoder: weights [out][in][kernel], bias [out],
// padding 1 on both sides.
struct ConvLayer {
  int in_channels = 0;
  int out_channels = 0;
  int kernel = 0;
  int stride = 1;
  std::vector<float> weight;
  std::vector<float> bias;
};

inline constexpr int kStftFilterLength = 256;
inline constexpr int kStftHop = 128;
inline constexpr int kStftBins = 129;  // filter_length / 2 + 1
inline constexpr int kReflectPadSamples = 64;
inline constexpr int kLstmHidden = 128;

struct SileroWeights {
  // [2 * kStftBins][kStftFilterLength]: real parts, then imaginary parts of
  // the windowed DFT the network uses as its first convolution.
  std::vector<float> stft_basis;
  // 129 -> 128 (stride 1), 128 -> 64 (2), 64 -> 64 (2), 64 -> 128 (1).
  std::vector<ConvLayer> encoder;
  // PyTorch LSTMCell layout: gate rows i, f, g, o of kLstmHidden each.
  std::vector<float> lstm_weight_ih;  // [4 * hidden][hidden]
  std::vector<float> lstm_weight_hh;  // [4 * hidden][hidden]
  std::vector<float> lstm_bias_ih;    // [4 * hidden]
  std::vector<float> lstm_bias_hh;    // [4 * hidden]
  std::vector<float> head_weight;     // [hidden] (1x1 Conv to one channel)
  float head_bias = 0.0f;
};

// Parses `bytes` as ONNX and reads the 16 kHz branch of Silero VAD v5: the
// graph inputs (input, state, sr), the If on sr == 16000, every weight by
// name with its exact shape, and the attributes of the ops that use them
// (STFT conv stride, encoder strides and padding, reflect padding, LSTM
// hidden size). Throws Error(kModelError) naming `source` for anything else.
SileroWeights ReadSileroWeights(std::span<const uint8_t> bytes,
                                const std::string& source);

}  // namespace voxprint::vad
