// Silero VAD v5's 16 kHz forward pass in plain C++.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "vad/silero-weights.h"
#include "voxprint/cancel.h"

namespace voxprint::vad {

// Immutable after construction; Run keeps its state on its own stack, so
// concurrent calls are safe.
class SileroNetwork {
  struct Scratch;  // one stream's working memory and state

 public:
  explicit SileroNetwork(const SileroWeights& weights);

  // One probability per 512-sample chunk (the last one zero-padded), state
  // and 64-sample context starting at zero, as Silero's own wrapper feeds
  // the ONNX model.
  std::vector<float> Run(std::span<const float> samples,
                         const CancelToken& cancel) const;

  // Run's computation on audio given in pieces: Push(a), Push(b), Finish()
  // gives exactly Run(a ++ b), chunk by chunk with the same state.
  class Stream {
   public:
    explicit Stream(const SileroNetwork& network);
    ~Stream();
    // Appends one probability per complete 512-sample chunk now available.
    void Push(std::span<const float> samples, std::vector<float>* out);
    // The last partial chunk, zero-padded (nothing when there is none).
    void Finish(std::vector<float>* out);

   private:
    void Step(std::vector<float>* out);
    const SileroNetwork& network_;
    std::unique_ptr<Scratch> scratch_;
    std::vector<float> window_;  // context + chunk
    size_t filled_ = 0;          // samples of the chunk present
  };

 private:
  // 576 samples (context + chunk) -> the 128 features the LSTM reads.
  void Encode(const float* window, Scratch& scratch) const;
  // One LSTM step and the head: updates h and c, returns the probability.
  float Decode(Scratch& scratch) const;

  // Weights transposed so that every inner loop runs over output channels
  // (contiguous, vectorisable without reordering any sum).
  std::vector<float> stft_basis_t_;  // [filter_length][2 * bins]
  struct Conv {
    int in_channels, out_channels, stride;
    std::vector<float> weight_t;  // [in][kernel 3][out]
    std::vector<float> bias;
  };
  std::vector<Conv> encoder_;
  std::vector<float> weight_ih_t_;  // [hidden][4 * hidden]
  std::vector<float> weight_hh_t_;  // [hidden][4 * hidden]
  std::vector<float> gate_bias_;    // bias_ih + bias_hh, [4 * hidden]
  std::vector<float> head_weight_;
  float head_bias_ = 0.0f;
};

}  // namespace voxprint::vad
