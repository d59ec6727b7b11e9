// Silero VAD v5's 16 kHz forward pass in plain C++.
//
// The encoder (STFT, four convolutions, the LSTM's input projection) does
// not depend on the recurrent state, so it runs on blocks of chunks, as
// matrix products with one row per chunk; only the LSTM's recurrent step and
// the head run chunk by chunk. The arithmetic is in silero-kernels.h.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "vad/silero-kernels.h"
#include "vad/silero-weights.h"
#include "voxprint/cancel.h"

namespace voxprint::vad {

// How the network computes; the defaults are the fastest.
struct SileroNetworkOptions {
  // nullptr: BestSileroKernels().
  const SileroKernels* kernels = nullptr;
  // The STFT as a product with the file's basis instead of an FFT. The FFT
  // is used only when the basis is a windowed DFT (it is in Silero VAD v5).
  bool matrix_stft = false;
};

// Immutable after construction; Run and each Stream keep their state and
// working memory to themselves, so concurrent calls are safe.
class SileroNetwork {
  struct Block;  // working memory for kBlockChunks chunks
  struct State;  // the LSTM's h and c

 public:
  // Chunks encoded together.
  static constexpr int kBlockChunks = 32;

  explicit SileroNetwork(const SileroWeights& weights,
                         const SileroNetworkOptions& options = {});

  // One probability per 512-sample chunk (the last one zero-padded), state
  // and 64-sample context starting at zero, as Silero's own wrapper feeds
  // the ONNX model. `cancel` is checked before every block.
  std::vector<float> Run(std::span<const float> samples,
                         const CancelToken& cancel) const;

  // Whether the STFT is computed by FFT (see SileroNetworkOptions).
  bool UsesFft() const { return !window_.empty(); }
  const SileroKernels& kernels() const { return *kernels_; }

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
    // Moves the window (context + chunk) into the block; runs the block
    // when it is full.
    void EndChunk(std::vector<float>* out);
    // Runs the chunks waiting in the block.
    void Flush(std::vector<float>* out);
    const SileroNetwork& network_;
    std::unique_ptr<Block> block_;
    std::unique_ptr<State> state_;
    int pending_ = 0;            // chunks waiting in block_
    std::vector<float> window_;  // context + chunk
    size_t filled_ = 0;          // samples of the chunk present
  };

 private:
  // Chunks 0..chunks-1 of `block`, their windows (context + chunk) filled:
  // the LSTM's input gates of each (block.pre_gates).
  void Encode(Block& block, int chunks) const;
  // The LSTM steps and head for those chunks, in order: one probability
  // each into `probabilities`.
  void Decode(const Block& block, int chunks, State& state,
              float* probabilities) const;

  const SileroKernels* kernels_;
  // The FFT's window and twiddles (empty: the matrix STFT).
  std::vector<float> window_;
  std::vector<float> twiddles_;
  // The STFT basis transposed, columns padded to kGemmColumnAlign:
  // [filter_length][stft_columns_] (real parts, then imaginary).
  std::vector<float> stft_basis_t_;
  int stft_columns_ = 0;
  std::vector<float> stft_zero_bias_;
  struct Conv {
    int in_channels, out_channels, stride;
    std::vector<float> weight_t;  // [kernel 3][in][out]
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
