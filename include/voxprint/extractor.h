// The embedding pipeline: audio -> mono 16 kHz -> fbank (mean subtracted) ->
// ResNet -> statistics pooling -> embedding. The CLI and the server both use
// this facade and nothing below it.
//
// Thread safety: an Extractor is safe to use from many threads at once; each
// call borrows one backend Session from an internal pool (bounded by
// ExtractorOptions::max_parallel_runs), so concurrent calls run in parallel.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "voxprint/audio.h"
#include "voxprint/backend.h"
#include "voxprint/cancel.h"
#include "voxprint/error.h"
#include "voxprint/features.h"
#include "voxprint/model.h"

namespace voxprint {

struct ExtractorOptions {
  std::string model_path;       // any supported model file
  std::string device = "auto";  // "auto", "cpu", "cuda", "cuda:N"
  BackendOptions backend;       // threads, precision
  AudioLimits audio_limits;     // bounds on decoded input
  int max_parallel_runs = 4;    // backend sessions kept for concurrent calls
  // Model().sha256, the model file's checksum; false leaves it empty and
  // starts faster (the CLI's embed and compare, which never show it).
  bool model_checksum = true;
  // Whole-mode embeddings (no excerpt) of files or uploads whose header
  // states a longer duration stream through the pipeline in two decoding
  // passes, in memory that does not grow with the length (same result).
  // <= 0: never.
  double streaming_threshold_s = 1200.0;
  // Whole-mode embeddings of concurrent calls (a server's requests) share
  // network runs, batched by length: a call that finds a run going queues
  // for the next one instead of running alone. Unset: on for the cuda
  // backend, where a batch costs far less than its inputs one by one.
  std::optional<bool> batch_concurrent_calls;
  // Bounds on the work one sliding-window request may ask for: a tiny step
  // asks for hours of network time (3 s windows every 0.1 ms over 30 s are
  // 270,000 windows). The windows together may cover at most this many
  // times the audio's length (or one window's, when the audio is shorter):
  // 100 allows steps down to duration / 100, ten times finer than
  // pyannote's default of duration / 10, and bounds a request at 100 whole-
  // file passes. Beyond: kInvalidArgument naming the step and the bound.
  double max_window_coverage = 100.0;
  // And at most this many windows per input (100,000 windows are 100 MB of
  // embeddings, 28 hours of audio at pyannote's 1 s step).
  int64_t max_windows = 100000;
};

// Bounds EmbedRequest::Validate and the Extractor apply to parameters.
// Times (start, end) in seconds: 1e6 s is 11.6 days, past any real input.
inline constexpr double kMaxTimeSeconds = 1e6;
// A sliding window's duration, in seconds: one hour (longer windows are a
// whole-file embedding in all but name).
inline constexpr double kMaxWindowSeconds = 3600.0;
// The smallest sliding-window step, in seconds: one fbank frame shift
// (finer steps give windows whose features differ by a fraction of a frame).
inline constexpr double kMinWindowStepSeconds = 0.01;
// BackendOptions::num_threads at most (0: all cores). More threads than
// this gain nothing on any machine and make the thread library fail
// (libgomp crashed at 100,000 and stalled at 20,000).
inline constexpr int kMaxThreads = 1024;

enum class WindowMode { kWhole, kSliding };

// What to embed from one input.
struct EmbedRequest {
  WindowMode mode = WindowMode::kWhole;
  double window_duration_s = 3.0;  // sliding only: chunk length
  double window_step_s = 1.0;      // sliding only: hop
  // Sliding only, opt-in speed mode (CPU backend): run the network once over
  // the whole input and pool each window from that one output, about
  // duration/step times less work than running every window alone. An
  // approximation, not the reference's numbers: the features are
  // normalised by the whole input's mean, and a window's edges see the
  // audio around it instead of zero padding (bench/RESULTS.md gives the
  // measured difference).
  bool shared_trunk = false;
  // Sliding only: leave out the last window when it runs past the end of
  // the audio (pyannote zero-pads it; its embedding then describes partly
  // silence). When the audio is shorter than one window, its one padded
  // window is kept, flagged, with a warning.
  bool drop_partial = false;
  // Optional excerpt, in seconds of the input; applied before windowing.
  std::optional<double> start_s;
  std::optional<double> end_s;
  // Raised by the caller to stop the work early: the call then throws
  // ErrorCode::kCancelled (checked between decoded packets, batches of
  // windows and tiles). Default: never cancelled.
  CancelToken cancel;
  // Throws ErrorCode::kInvalidArgument naming the bad field and its bounds:
  // every number finite; start in [0, kMaxTimeSeconds), end in
  // (start, kMaxTimeSeconds]; window duration in (0, kMaxWindowSeconds];
  // window step in [kMinWindowStepSeconds, kMaxWindowSeconds] (duration and
  // step are checked in whole mode too: a typo should not pass silently).
  // The bounds that depend on the input's length (an excerpt inside it, the
  // windows' total work) are checked once it is decoded.
  void Validate() const;
};

struct WindowEmbedding {
  double start_s = 0.0;  // in seconds of the input (excerpt offset included)
  double end_s =
      0.0;  // start + duration (a padded last chunk ends past the input)
  std::vector<float> embedding;
  // The window runs past the end of the audio and was zero-padded to its
  // full length (as pyannote does); its audio ends at covered_end_s.
  bool padded = false;
  double covered_end_s = 0.0;  // min(end_s, end of the audio analysed)
};

// Something about the input that makes its embedding less trustworthy; the
// embedding is still the reference's. `code` is stable (for programs),
// `message` says it to a person.
struct ResultWarning {
  std::string code;  // no_signal, little_speech, short_speech, truncated,
                     // clipping, padded_window
  std::string message;
};

struct EmbeddingResult {
  std::string source;       // path or upload name
  AudioInfo audio;          // original rate, channels, ...
  double duration_s = 0.0;  // of the (excerpted) audio analysed
  WindowMode mode = WindowMode::kWhole;
  std::vector<float> embedding;          // whole mode
  std::vector<WindowEmbedding> windows;  // sliding mode
  bool shared_trunk = false;  // windows from EmbedRequest::shared_trunk
  double processing_s = 0.0;  // wall time of this call
  // Degenerate input (silence, little speech, a truncated file, clipping),
  // judged from the signal's energy; empty when nothing stood out. Not
  // computed for whole files long enough to stream (those never hold the
  // signal in memory).
  std::vector<ResultWarning> warnings;
};

// One input's outcome in a many-file call: its result, or the error that
// embedding it alone would have thrown.
struct BatchOutcome {
  std::optional<EmbeddingResult> result;
  std::optional<Error> error;
};

class Extractor {
 public:
  // Loads the model file and prepares it on the device. Throws Error:
  // kInvalidArgument for options out of range (threads beyond kMaxThreads,
  // ...), before the model file is read.
  explicit Extractor(const ExtractorOptions& options);
  ~Extractor();
  Extractor(const Extractor&) = delete;
  Extractor& operator=(const Extractor&) = delete;

  // Every call checks each embedding it returns: one holding NaN or Inf
  // (weights that overflow float32) throws kInternal naming the input (and
  // the window) instead of passing for a result.
  EmbeddingResult EmbedFile(const std::string& path,
                            const EmbedRequest& request = {}) const;
  EmbeddingResult EmbedBytes(std::span<const uint8_t> bytes,
                             const std::string& name,
                             const EmbedRequest& request = {}) const;
  // Many files: in whole mode the network runs over batches of inputs of
  // similar length (on the CPU about 1.4-1.6x the throughput of EmbedFile
  // one after another on files of a few seconds), with the numbers EmbedFile
  // gives up to float rounding; sliding windows go file by file. Inputs are
  // taken in rounds of about two minutes of audio, decoded on a helper
  // thread while the network runs, so memory stays bounded.
  // `on_outcome(index, outcome)` receives every input's outcome, in input
  // order, as its round completes; one input's failure leaves the others
  // untouched. Throws only for a bad request (before any input is read) and
  // kCancelled once request.cancel is raised (checked between inputs, before
  // each batch's network run and between its tiles): a cancelled job stops
  // as a whole, without outcomes for the inputs it did not finish.
  using OutcomeCallback = std::function<void(size_t, BatchOutcome&&)>;
  void EmbedFiles(std::span<const std::string> paths,
                  const EmbedRequest& request,
                  const OutcomeCallback& on_outcome) const;
  // Same for files already in memory (uploads): buffers[i] holds a file's
  // bytes, named names[i] in results and errors (sizes must match).
  void EmbedBuffers(std::span<const std::span<const uint8_t>> buffers,
                    std::span<const std::string> names,
                    const EmbedRequest& request,
                    const OutcomeCallback& on_outcome) const;

  // Already decoded audio (any rate; resampled here).
  EmbeddingResult EmbedDecoded(const DecodedAudio& audio,
                               const std::string& name,
                               const EmbedRequest& request = {}) const;
  // Raw mono samples at `sample_rate_hz` (library users).
  EmbeddingResult EmbedSamples(std::span<const float> samples,
                               int sample_rate_hz,
                               const EmbedRequest& request = {}) const;

  // The network alone: mean-subtracted features [batch, frames, bins] ->
  // [batch, embedding_dim].
  std::vector<float> EmbedFeatures(std::span<const float> features, int batch,
                                   int64_t frames) const;

  // Frees the scratch memory of the network sessions that no call is using
  // (on the CPU, a few hundred MB after batches of windows) and returns the
  // freed heap to the system; the next call prepares a session again (a
  // fraction of a second). For callers about to need memory for something
  // else (the diarizer's clustering) or going idle. Thread-safe.
  void ReleaseIdleMemory() const;

  const ModelInfo& Model() const;
  BackendInfo Device() const;
  // One line on how the device was chosen (for "auto").
  const std::string& DeviceChoice() const;
  int EmbeddingDim() const;
  const FbankOptions& Fbank() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Cosine similarity of two equal-length vectors, in [-1, 1]; 0 when either
// is all zeros. Throws kInvalidArgument on a size mismatch or when a vector
// holds NaN or infinite values.
double CosineSimilarity(std::span<const float> a, std::span<const float> b);

inline constexpr double kDefaultSameSpeakerThreshold = 0.7;

}  // namespace voxprint
