// Silero VAD v5's 16 kHz forward pass in plain C++.
//
// The encoder (STFT, four convolutions, the LSTM's input projection) does
// not depend on the recurrent state, so it runs on blocks of chunks, as
// matrix products with one row per chunk (oneDNN's sgemm) after an STFT by
// FFTW; only the LSTM's recurrent step and the head run chunk by chunk.
//
// Every block has the same shape (the last one is zero-padded) and every
// product runs on one thread, so a chunk's numbers never depend on how the
// audio was cut or on the thread count: Run and Stream agree exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "vad/silero-weights.h"
#include "voxprint/cancel.h"

namespace voxprint::vad {

// How the network computes; the default is the fastest.
struct SileroNetworkOptions {
  // The STFT as a product with the file's basis instead of an FFT. The FFT
  // is used only when the basis is a windowed DFT (it is in Silero VAD v5).
  bool matrix_stft = false;
};

// Immutable after construction; Run and each Stream keep their state and
// working memory to themselves, so concurrent calls are safe.
class SileroNetwork {
  struct Scratch;  // one encoding thread's working memory
  struct State;    // the LSTM's h and c

 public:
  // Chunks encoded together (one matrix row each); every product has this
  // many rows.
  static constexpr int kBlockChunks = 48;
  // Most threads one call uses: beyond this the recurrent part, which runs
  // on one thread, is the bottleneck.
  static constexpr int kMaxUsefulThreads = 4;

  explicit SileroNetwork(const SileroWeights& weights,
                         const SileroNetworkOptions& options = {});
  ~SileroNetwork();
  // No Stream may be using a network that is moved.
  SileroNetwork(SileroNetwork&&) noexcept;

  // One probability per 512-sample chunk (the last one zero-padded), state
  // and 64-sample context starting at zero, as Silero's own wrapper feeds
  // the ONNX model. `cancel` is checked before every block. With threads
  // > 1, other threads encode blocks ahead while this one runs the LSTM
  // (same results).
  std::vector<float> Run(std::span<const float> samples,
                         const CancelToken& cancel, int threads = 1) const;

  // Whether the STFT is computed by FFT (see SileroNetworkOptions).
  bool UsesFft() const { return fft_ != nullptr; }

  // Run's computation on audio given in pieces: Push(a), Push(b), Finish()
  // gives exactly Run(a ++ b), chunk by chunk with the same state.
  class Stream {
   public:
    explicit Stream(const SileroNetwork& network, int threads = 1);
    ~Stream();
    // Appends the probabilities of complete chunks once kStreamBatchChunks
    // of them are waiting (small pushes are batched so that blocks stay
    // full).
    void Push(std::span<const float> samples, std::vector<float>* out);
    // Appends every remaining chunk's, the last partial one zero-padded.
    void Finish(std::vector<float>* out);

    static constexpr int kStreamBatchChunks = 8 * kBlockChunks;

   private:
    // Runs the complete chunks in pending_.
    void Flush(std::vector<float>* out);
    const SileroNetwork& network_;
    const int threads_;
    std::unique_ptr<State> state_;
    // Context (64 samples) + the samples of the chunks not run yet.
    std::vector<float> pending_;
  };

 private:
  // Writes chunk `chunk`'s window (context + chunk, kVadContextSamples +
  // kVadChunkSamples samples) at `window`. Called from several threads.
  using WindowFiller = std::function<void(int64_t chunk, float* window)>;

  // Chunks 0..chunks-1 in order, continuing `state`: one probability each.
  // Blocks are encoded by up to `threads` threads while this one decodes
  // them in order; `cancel` is checked between blocks.
  void Process(int64_t chunks, const WindowFiller& fill, int threads,
               const CancelToken& cancel, State& state,
               float* probabilities) const;
  // The LSTM's input gates (pre_gates, [kBlockChunks][4 * hidden]) of
  // chunks first..first+count-1 (count <= kBlockChunks; the rows after them
  // are those of silent chunks, to be ignored).
  void Encode(const WindowFiller& fill, int64_t first, int count,
              Scratch& scratch, float* pre_gates) const;
  // The LSTM steps and head for `count` chunks' input gates, in order.
  void Decode(const float* pre_gates, int count, State& state,
              float* probabilities) const;

  struct FftPlan;  // FFTW's plan of one frame's real DFT
  // Null: the matrix STFT.
  std::unique_ptr<const FftPlan> fft_;
  // The FFT's window (the basis's row 0).
  std::vector<float> window_;
  // Matrix STFT: the basis transposed, [filter_length][2 * bins] (real parts,
  // then imaginary).
  std::vector<float> stft_basis_t_;
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
