#include "voxprint/extractor.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "audio/stream-decoder.h"
#include "backends/run-cancel.h"
#include "model/model-file.h"
#include "pipeline/long-audio.h"
#include "pipeline/prefetcher.h"
#include "pipeline/sample-embedder.h"
#include "pipeline/session-pool.h"
#include "pipeline/signal-checks.h"
#include "scoring/windows.h"
#include "voxprint/error.h"

namespace voxprint {

namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

using pipeline::NamingErrors;

// Concurrent calls batched together (ExtractorOptions::
// batch_concurrent_calls): at most this many frames (5.5 min of audio) per
// batch; Session::RunMixed cuts it into runs of similar length.
constexpr int64_t kMaxConcurrentBatchFrames = 32768;

// "<what> <value> is out of range: <bound>" for a parameter.
Error OutOfRange(const std::string& what, double value,
                 const std::string& bound) {
  return Error(ErrorCode::kInvalidArgument,
               what + " " +
                   (std::isfinite(value) ? pipeline::SecondsText(value)
                                         : std::to_string(value)) +
                   " is out of range: " + bound);
}

std::string Seconds(double s) { return pipeline::SecondsText(s); }

}  // namespace

void EmbedRequest::Validate() const {
  // Every bound is written as !(inside) so that NaN fails it too.
  if (!(window_duration_s > 0 && window_duration_s <= kMaxWindowSeconds))
    throw OutOfRange(
        "window duration", window_duration_s,
        "it must be > 0 and at most " + Seconds(kMaxWindowSeconds));
  if (!(window_step_s >= kMinWindowStepSeconds &&
        window_step_s <= kMaxWindowSeconds))
    throw OutOfRange("window step", window_step_s,
                     "it must be at least " + Seconds(kMinWindowStepSeconds) +
                         " and at most " + Seconds(kMaxWindowSeconds));
  if (shared_trunk && mode != WindowMode::kSliding)
    throw Error(ErrorCode::kInvalidArgument,
                "the shared-trunk mode applies to sliding windows only");
  if (start_s && !(*start_s >= 0 && *start_s < kMaxTimeSeconds))
    throw OutOfRange("start", *start_s,
                     "it must be >= 0 and below " + Seconds(kMaxTimeSeconds));
  if (end_s && !(*end_s > 0 && *end_s <= kMaxTimeSeconds))
    throw OutOfRange("end", *end_s,
                     "it must be > 0 and at most " + Seconds(kMaxTimeSeconds));
  if (start_s && end_s && *end_s <= *start_s)
    throw Error(ErrorCode::kInvalidArgument,
                "end (" + pipeline::SecondsText(*end_s) +
                    ") must be after start (" +
                    pipeline::SecondsText(*start_s) + ")");
}

struct Extractor::Impl {
  ExtractorOptions options;
  ModelInfo model_info;
  FbankOptions fbank;
  std::unique_ptr<Backend> backend;
  std::string device_choice;
  std::shared_ptr<const PreparedModel> prepared;
  std::unique_ptr<pipeline::SessionPool> sessions;
  int embedding_dim = 0;
  // Concurrent calls sharing network runs, or none (batch_concurrent_calls).
  std::unique_ptr<pipeline::RequestBatcher> batcher;
  // Samples -> embeddings (fbank, windows, network); uses `sessions`.
  std::unique_ptr<pipeline::SampleEmbedder> embedder;

  static constexpr int64_t kMinFrames = pipeline::SampleEmbedder::kMinFrames;

  static std::vector<float> Excerpt(std::vector<float> samples_16k,
                                    const EmbedRequest& request,
                                    const std::string& name) {
    const int64_t total = static_cast<int64_t>(samples_16k.size());
    const double duration_s = static_cast<double>(total) / kModelSampleRateHz;
    const int64_t first = scoring::SampleAtTime(request.start_s.value_or(0.0),
                                                kModelSampleRateHz);
    int64_t last = request.end_s ? scoring::SampleAtTime(*request.end_s,
                                                         kModelSampleRateHz)
                                 : total;
    if (first >= total)
      throw Error(ErrorCode::kInvalidArgument,
                  name + ": start " + pipeline::SecondsText(*request.start_s) +
                      " is at or past the end of the audio (" +
                      pipeline::SecondsText(duration_s) + ")");
    // An end up to 10 ms past the end is rounding; beyond that, a mistake.
    if (last - total > kModelSampleRateHz / 100)
      throw Error(ErrorCode::kInvalidArgument,
                  name + ": end " + pipeline::SecondsText(*request.end_s) +
                      " is past the end of the audio (" +
                      pipeline::SecondsText(duration_s) + ")");
    last = std::min(last, total);
    return std::vector<float>(samples_16k.begin() + first,
                              samples_16k.begin() + last);
  }

  // Whole mode on an input whose header says it is longer than the
  // streaming threshold takes the bounded-memory two-pass path
  // (long-audio.h).
  bool Streams(const audio::StreamDecoder& decoder,
               const EmbedRequest& request) const {
    return request.mode == WindowMode::kWhole && !request.start_s &&
           !request.end_s && options.streaming_threshold_s > 0 &&
           decoder.HeaderDurationSeconds() > options.streaming_threshold_s;
  }

  // A header may not tell the length (a length field zeroed, a pipe): whole
  // mode then decodes into memory only up to the threshold, in 16 kHz
  // samples (0: no bound; see DecodeOrStreams).
  int64_t StreamsBeyond16k(const EmbedRequest& request) const {
    if (request.mode != WindowMode::kWhole || request.start_s ||
        request.end_s || options.streaming_threshold_s <= 0)
      return 0;
    return static_cast<int64_t>(
        std::ceil(options.streaming_threshold_s * kModelSampleRateHz));
  }
  // The input at 16 kHz, or nothing when it must stream after all: it is
  // longer than the threshold though its header did not say so, and goes
  // the bounded-memory way, from the start.
  std::optional<Audio16k> DecodeOrStreams(audio::StreamDecoder& decoder,
                                          const EmbedRequest& request) const {
    decoder.SetCancel(request.cancel);
    return decoder.DecodeAll16kUnlessLonger(StreamsBeyond16k(request));
  }

  // Opens the input once: a streaming input goes on from the decoder
  // already open, anything else is decoded into memory from it.
  // `declared_s`: the length the input's own header declares where FFmpeg
  // does not say it (a WAV's data chunk; 0: unknown).
  EmbeddingResult EmbedStream(const pipeline::StreamOpener& open,
                              const std::string& name,
                              const EmbedRequest& request,
                              double declared_s = 0.0) const {
    request.Validate();
    request.cancel.ThrowIfCancelled(name);
    std::unique_ptr<audio::StreamDecoder> first = open();
    if (Streams(*first, request))
      return EmbedLong(std::move(first), open, name, request.cancel);
    const double header_s =
        std::max(first->HeaderDurationSeconds(), declared_s);
    std::optional<Audio16k> audio = DecodeOrStreams(*first, request);
    first.reset();
    if (!audio) return EmbedLong(open(), open, name, request.cancel);
    return Embed(std::move(*audio), name, request, header_s);
  }

  EmbeddingResult EmbedLong(std::unique_ptr<audio::StreamDecoder> first,
                            const pipeline::StreamOpener& open,
                            const std::string& name,
                            const CancelToken& cancel) const {
    const auto started = std::chrono::steady_clock::now();
    // Pass 1 reuses the decoder already open; pass 2 opens the input again.
    const pipeline::StreamOpener reopen = [&] {
      return first ? std::move(first) : open();
    };
    auto session = sessions->Borrow();
    pipeline::LongAudioEmbedding embedded = NamingErrors(name, [&] {
      return pipeline::EmbedLongAudio(reopen, fbank, *session, name, kMinFrames,
                                      cancel);
    });
    pipeline::CheckFinite(embedded.embedding, name);
    EmbeddingResult result;
    result.source = name;
    result.audio = embedded.info;
    result.mode = WindowMode::kWhole;
    result.duration_s =
        static_cast<double>(embedded.samples_16k) / kModelSampleRateHz;
    result.embedding = std::move(embedded.embedding);
    result.processing_s = SecondsSince(started);
    return result;
  }

  // Decoded audio -> the 16 kHz samples to analyse (excerpt cut), and the
  // result's fields known before the network runs.
  struct PreparedInput {
    EmbeddingResult result;
    std::vector<float> samples_16k;
    double offset_s = 0.0;  // of the excerpt, in seconds of the input
  };
  static PreparedInput Prepare(const DecodedAudio& decoded,
                               const std::string& name,
                               const EmbedRequest& request) {
    return Prepare(
        Audio16k{Resample(decoded.mono.samples, decoded.mono.sample_rate_hz,
                          kModelSampleRateHz),
                 decoded.info},
        name, request);
  }
  // The same from audio already at 16 kHz (StreamDecoder::DecodeAll16k,
  // which never holds the original-rate signal).
  // `header_s`: the length the container's header declares (0: unknown).
  static PreparedInput Prepare(Audio16k audio, const std::string& name,
                               const EmbedRequest& request,
                               double header_s = 0.0) {
    PreparedInput input;
    EmbeddingResult& result = input.result;
    result.source = name;
    result.audio = std::move(audio.info);
    result.mode = request.mode;
    result.shared_trunk = request.shared_trunk;

    // The reference resamples the whole file and cuts the excerpt from the
    // 16 kHz signal at floor(t * 16000) (cutting at the original rate first
    // moved 8 kHz excerpts by 6e-3, measured).
    input.samples_16k = std::move(audio.samples);
    if (request.start_s || request.end_s) {
      input.offset_s = request.start_s.value_or(0.0);
      input.samples_16k = Excerpt(std::move(input.samples_16k), request, name);
    }
    result.duration_s =
        static_cast<double>(input.samples_16k.size()) / kModelSampleRateHz;
    result.warnings =
        pipeline::LengthWarnings(result.audio.DurationSeconds(), header_s);
    for (ResultWarning& warning : pipeline::SignalWarnings(input.samples_16k))
      result.warnings.push_back(std::move(warning));
    return input;
  }

  // `audio`: DecodedAudio, or Audio16k (see Prepare).
  template <typename DecodedOr16k>
  EmbeddingResult Embed(DecodedOr16k&& audio, const std::string& name,
                        const EmbedRequest& request,
                        double header_s = 0.0) const {
    const auto started = std::chrono::steady_clock::now();
    request.Validate();
    request.cancel.ThrowIfCancelled(name);
    PreparedInput input = [&] {
      if constexpr (std::is_same_v<std::decay_t<DecodedOr16k>, Audio16k>)
        return Prepare(std::forward<DecodedOr16k>(audio), name, request,
                       header_s);
      else
        return Prepare(std::forward<DecodedOr16k>(audio), name, request);
    }();
    EmbeddingResult& result = input.result;
    if (request.mode == WindowMode::kWhole)
      result.embedding =
          embedder->EmbedWhole(input.samples_16k, name, request.cancel);
    else {
      result.windows = embedder->EmbedSliding(input.samples_16k, request,
                                              input.offset_s, name);
      pipeline::MarkPaddedWindows(result.windows,
                                  input.offset_s + result.duration_s,
                                  request.drop_partial, result.warnings);
    }
    result.processing_s = SecondsSince(started);
    return std::move(result);
  }

  // Whole mode over many inputs (Extractor::EmbedFiles): a helper thread
  // decodes the inputs and computes their features (pipeline::Prefetcher,
  // at most a round ahead), and the network runs on rounds of about
  // kRoundFrames feature frames (bounded memory), each as one
  // Session::RunMixed call, which batches inputs of similar length. Inputs
  // that stream (Streams) run alone, in their turn.
  static constexpr int64_t kRoundFrames = 12000;  // 2 min of audio

  // One input as the helper leaves it: its outcome so far, and its features
  // when it waits for the network.
  struct PreparedWhole {
    BatchOutcome outcome;
    std::optional<Features> features;
    double prepare_s = 0.0;
    bool streams = false;  // too long to hold: EmbedLong, in its turn
  };
  PreparedWhole PrepareWhole(const std::string& name,
                             const pipeline::StreamOpener& open,
                             const EmbedRequest& request,
                             double declared_s) const {
    const auto started = std::chrono::steady_clock::now();
    PreparedWhole prepared;
    try {
      request.cancel.ThrowIfCancelled(name);
      std::unique_ptr<audio::StreamDecoder> decoder = open();
      if (Streams(*decoder, request)) {
        prepared.streams = true;
        return prepared;
      }
      const double header_s =
          std::max(decoder->HeaderDurationSeconds(), declared_s);
      std::optional<Audio16k> audio = DecodeOrStreams(*decoder, request);
      decoder.reset();
      if (!audio) {
        prepared.streams = true;
        return prepared;
      }
      request.cancel.ThrowIfCancelled(name);
      PreparedInput input = Prepare(std::move(*audio), name, request, header_s);
      prepared.features = embedder->FeaturesOf(input.samples_16k, name);
      prepared.outcome.result = std::move(input.result);
    } catch (const Error& error) {
      prepared.outcome.error = error;
    }
    prepared.prepare_s = SecondsSince(started);
    return prepared;
  }

  void EmbedMany(size_t count,
                 const std::function<std::string(size_t)>& name_of,
                 const std::function<pipeline::StreamOpener(size_t)>& opener_of,
                 const std::function<double(size_t)>& declared_of,
                 const EmbedRequest& request,
                 const Extractor::OutcomeCallback& on_outcome) const {
    request.Validate();
    const bool whole = request.mode == WindowMode::kWhole;
    std::optional<pipeline::Prefetcher<PreparedWhole>> prepared;
    if (whole)
      prepared.emplace(
          count,
          [&](size_t index) {
            return PrepareWhole(name_of(index), opener_of(index), request,
                                declared_of(index));
          },
          [](const PreparedWhole& input) {
            return input.features ? input.features->num_frames : int64_t{0};
          },
          kRoundFrames);

    // Outcomes of the round's inputs, from input `round_first` on, and the
    // features of those waiting for the network.
    struct Waiting {
      size_t slot = 0;
      Features features;
      double prepare_s = 0.0;
    };
    size_t round_first = 0;
    std::vector<BatchOutcome> outcomes;
    std::vector<Waiting> waiting;
    int64_t waiting_frames = 0;
    const auto finish_round = [&] {
      if (!waiting.empty()) {
        const auto started = std::chrono::steady_clock::now();
        try {
          std::vector<Session::Input> inputs;
          for (const Waiting& w : waiting)
            inputs.push_back({w.features.values, w.features.num_frames});
          const std::vector<float> embeddings = [&] {
            request.cancel.ThrowIfCancelled("the batch's network run");
            const backends::RunCancelScope scope(request.cancel);
            auto session = sessions->Borrow();
            return session->RunMixed(inputs);
          }();
          // Each input is charged its share of the batched network run.
          const double network_s = SecondsSince(started);
          for (size_t i = 0; i < waiting.size(); ++i) {
            BatchOutcome& outcome = outcomes[waiting[i].slot];
            EmbeddingResult& result = *outcome.result;
            const auto first = embeddings.begin() + i * embedding_dim;
            result.embedding.assign(first, first + embedding_dim);
            result.processing_s = waiting[i].prepare_s +
                                  network_s *
                                      static_cast<double>(inputs[i].frames) /
                                      static_cast<double>(waiting_frames);
            try {
              pipeline::CheckFinite(result.embedding, result.source);
            } catch (const Error& error) {
              outcome.result.reset();
              outcome.error = error;
            }
          }
        } catch (const Error& error) {
          // A cancelled job stops as a whole (EmbedMany throws).
          if (error.code() == ErrorCode::kCancelled) throw;
          // The batch failed as a whole (memory, device): so does each
          // of its inputs.
          for (const Waiting& w : waiting) {
            outcomes[w.slot].result.reset();
            outcomes[w.slot].error =
                Error(error.code(),
                      name_of(round_first + w.slot) + ": " + error.what());
          }
        }
      }
      for (size_t i = 0; i < outcomes.size(); ++i)
        on_outcome(round_first + i, std::move(outcomes[i]));
      round_first += outcomes.size();
      outcomes.clear();
      waiting.clear();
      waiting_frames = 0;
    };
    for (size_t index = 0; index < count; ++index) {
      // Between inputs: a cancelled job stops as a whole, without reporting
      // the inputs it will not embed.
      request.cancel.ThrowIfCancelled(name_of(index));
      BatchOutcome& outcome = outcomes.emplace_back();
      try {
        if (!whole) {
          outcome.result = EmbedStream(opener_of(index), name_of(index),
                                       request, declared_of(index));
        } else if (PreparedWhole input = prepared->Next(); input.streams) {
          const pipeline::StreamOpener open = opener_of(index);
          outcome.result =
              EmbedLong(open(), open, name_of(index), request.cancel);
        } else {
          outcome = std::move(input.outcome);
          if (input.features) {
            waiting_frames += input.features->num_frames;
            waiting.push_back({outcomes.size() - 1, std::move(*input.features),
                               input.prepare_s});
          }
        }
      } catch (const Error& error) {
        if (error.code() == ErrorCode::kCancelled) throw;
        outcome.result.reset();
        outcome.error = error;
      }
      if (outcome.error && outcome.error->code() == ErrorCode::kCancelled)
        throw *outcome.error;
      // Nothing waiting for the network (sliding windows, failures): the
      // outcomes so far can go out at once.
      if (waiting.empty() || waiting_frames >= kRoundFrames) finish_round();
    }
    finish_round();
  }
};

namespace {

// Options out of range fail before the model is read.
void ValidateOptions(const ExtractorOptions& options) {
  const int threads = options.backend.num_threads;
  if (threads < 0 || threads > kMaxThreads)
    throw Error(ErrorCode::kInvalidArgument,
                "threads " + std::to_string(threads) +
                    " is out of range: it must be 0 (all cores) to " +
                    std::to_string(kMaxThreads));
  // Each run holds a session's scratch memory (below 1: one).
  if (options.max_parallel_runs > kMaxThreads)
    throw Error(ErrorCode::kInvalidArgument,
                "parallel runs " + std::to_string(options.max_parallel_runs) +
                    " is out of range: at most " + std::to_string(kMaxThreads));
  if (!(options.max_window_coverage >= 1.0) ||
      !std::isfinite(options.max_window_coverage))
    throw Error(ErrorCode::kInvalidArgument,
                "max_window_coverage must be a finite number >= 1");
  if (options.max_windows < 1)
    throw Error(ErrorCode::kInvalidArgument, "max_windows must be >= 1");
}

}  // namespace

Extractor::Extractor(const ExtractorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  ValidateOptions(options);
  impl_->options = options;
  model::LoadOptions load;
  load.checksum = options.model_checksum;
  model::LoadedModel loaded = model::LoadModelFile(options.model_path, load);
  impl_->model_info = loaded.info;
  impl_->backend =
      CreateBackend(options.device, options.backend, &impl_->device_choice);
  impl_->prepared = impl_->backend->Prepare(std::move(loaded.weights));
  impl_->embedding_dim = impl_->prepared->EmbeddingDim();
  impl_->sessions = std::make_unique<pipeline::SessionPool>(
      impl_->prepared, options.max_parallel_runs);
  const BackendInfo device = impl_->backend->Info();
  if (options.batch_concurrent_calls.value_or(device.name == "cuda"))
    impl_->batcher = std::make_unique<pipeline::RequestBatcher>(
        *impl_->sessions, impl_->embedding_dim, kMaxConcurrentBatchFrames);
  impl_->embedder = std::make_unique<pipeline::SampleEmbedder>(
      impl_->fbank, *impl_->sessions, impl_->embedding_dim, device.batch_frames,
      impl_->batcher.get(),
      pipeline::WindowLimits{options.max_window_coverage, options.max_windows});
}

Extractor::~Extractor() = default;

EmbeddingResult Extractor::EmbedFile(const std::string& path,
                                     const EmbedRequest& request) const {
  return impl_->EmbedStream(
      [&] {
        return audio::StreamDecoder::OpenFile(path,
                                              impl_->options.audio_limits);
      },
      path, request, pipeline::DeclaredSeconds(pipeline::FileHead(path)));
}

EmbeddingResult Extractor::EmbedBytes(std::span<const uint8_t> bytes,
                                      const std::string& name,
                                      const EmbedRequest& request) const {
  return impl_->EmbedStream(
      [&] {
        return audio::StreamDecoder::OpenBytes(bytes, name,
                                               impl_->options.audio_limits);
      },
      name, request, pipeline::DeclaredSeconds(bytes));
}

EmbeddingResult Extractor::EmbedDecoded(const DecodedAudio& audio,
                                        const std::string& name,
                                        const EmbedRequest& request) const {
  return impl_->Embed(audio, name, request);
}

EmbeddingResult Extractor::EmbedSamples(std::span<const float> samples,
                                        int sample_rate_hz,
                                        const EmbedRequest& request) const {
  if (sample_rate_hz <= 0)
    throw Error(
        ErrorCode::kInvalidArgument,
        "sample rate must be positive, got " + std::to_string(sample_rate_hz));
  DecodedAudio audio;
  audio.mono.samples.assign(samples.begin(), samples.end());
  audio.mono.sample_rate_hz = sample_rate_hz;
  audio.info.sample_rate_hz = sample_rate_hz;
  audio.info.channels = 1;
  audio.info.frames = static_cast<int64_t>(samples.size());
  audio.info.codec = "samples";
  return impl_->Embed(audio, "samples", request);
}

std::vector<float> Extractor::EmbedFeatures(std::span<const float> features,
                                            int batch, int64_t frames) const {
  // Compared by division: batch * frames * bins could overflow.
  const auto bins = static_cast<size_t>(impl_->fbank.num_mel_bins);
  if (batch <= 0 || frames < Impl::kMinFrames || features.size() % bins != 0 ||
      features.size() / bins % static_cast<size_t>(batch) != 0 ||
      features.size() / bins / static_cast<size_t>(batch) !=
          static_cast<uint64_t>(frames))
    throw Error(ErrorCode::kInvalidArgument,
                "features must be [batch, frames >= 9, " +
                    std::to_string(impl_->fbank.num_mel_bins) + "], got " +
                    std::to_string(features.size()) + " values for batch " +
                    std::to_string(batch) + " and " + std::to_string(frames) +
                    " frames");
  return impl_->embedder->Run(features, batch, frames);
}

const ModelInfo& Extractor::Model() const { return impl_->model_info; }
BackendInfo Extractor::Device() const { return impl_->backend->Info(); }
const std::string& Extractor::DeviceChoice() const {
  return impl_->device_choice;
}
void Extractor::ReleaseIdleMemory() const {
  impl_->sessions->ReleaseIdle();
#ifdef __GLIBC__
  // glibc keeps freed blocks below its (adaptive) mmap threshold in the heap.
  malloc_trim(0);
#endif
}

int Extractor::EmbeddingDim() const { return impl_->embedding_dim; }
const FbankOptions& Extractor::Fbank() const { return impl_->fbank; }

void Extractor::EmbedFiles(std::span<const std::string> paths,
                           const EmbedRequest& request,
                           const OutcomeCallback& on_outcome) const {
  impl_->EmbedMany(
      paths.size(), [&](size_t i) { return paths[i]; },
      [&](size_t i) -> pipeline::StreamOpener {
        return [this, &path = paths[i]] {
          return audio::StreamDecoder::OpenFile(path,
                                                impl_->options.audio_limits);
        };
      },
      [&](size_t i) {
        return pipeline::DeclaredSeconds(pipeline::FileHead(paths[i]));
      },
      request, on_outcome);
}

void Extractor::EmbedBuffers(std::span<const std::span<const uint8_t>> buffers,
                             std::span<const std::string> names,
                             const EmbedRequest& request,
                             const OutcomeCallback& on_outcome) const {
  if (buffers.size() != names.size())
    throw Error(ErrorCode::kInvalidArgument,
                std::to_string(buffers.size()) + " buffers but " +
                    std::to_string(names.size()) + " names");
  impl_->EmbedMany(
      buffers.size(), [&](size_t i) { return names[i]; },
      [&](size_t i) -> pipeline::StreamOpener {
        return [this, bytes = buffers[i], &name = names[i]] {
          return audio::StreamDecoder::OpenBytes(bytes, name,
                                                 impl_->options.audio_limits);
        };
      },
      [&](size_t i) { return pipeline::DeclaredSeconds(buffers[i]); }, request,
      on_outcome);
}

}  // namespace voxprint
