#include "voxprint/extractor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <string>

#include "audio/stream-decoder.h"
#include "model/model-file.h"
#include "pipeline/long-audio.h"
#include "pipeline/prefetcher.h"
#include "pipeline/session-pool.h"
#include "scoring/windows.h"
#include "voxprint/error.h"

namespace voxprint {

namespace {

// Sliding windows are run in batches of equal shape; this bounds a batch's
// frames so layer-1 activations stay in the tens of megabytes.
constexpr int64_t kMaxBatchFrames = 6000;
constexpr int kMaxBatchWindows = 32;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

std::string Seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g s", s);
  return text;
}

// Prefixes errors raised below the pipeline (which do not know the input's
// name) with it, keeping the code.
template <typename Function>
auto NamingErrors(const std::string& name, Function&& function) {
  try {
    return function();
  } catch (const Error& error) {
    const std::string message = error.what();
    if (message.rfind(name, 0) == 0) throw;
    throw Error(error.code(), name + ": " + message);
  }
}

}  // namespace

void EmbedRequest::Validate() const {
  if (mode == WindowMode::kSliding) {
    if (!std::isfinite(window_duration_s) || window_duration_s <= 0)
      throw Error(ErrorCode::kInvalidArgument,
                  "window duration must be a positive number of seconds");
    if (!std::isfinite(window_step_s) || window_step_s <= 0)
      throw Error(ErrorCode::kInvalidArgument,
                  "window step must be a positive number of seconds");
  }
  if (shared_trunk && mode != WindowMode::kSliding)
    throw Error(ErrorCode::kInvalidArgument,
                "the shared-trunk mode applies to sliding windows only");
  if (start_s && (!std::isfinite(*start_s) || *start_s < 0))
    throw Error(ErrorCode::kInvalidArgument,
                "start must be a non-negative number of seconds");
  if (end_s && (!std::isfinite(*end_s) || *end_s <= 0))
    throw Error(ErrorCode::kInvalidArgument,
                "end must be a positive number of seconds");
  if (start_s && end_s && *end_s <= *start_s)
    throw Error(ErrorCode::kInvalidArgument, "end (" + Seconds(*end_s) +
                                                 ") must be after start (" +
                                                 Seconds(*start_s) + ")");
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

  // The network needs at least two time steps after its three stride-2
  // stages for an unbiased standard deviation: 9 frames.
  static constexpr int64_t kMinFrames = 9;

  Features FeaturesOf(std::span<const float> samples_16k,
                      const std::string& name) const {
    Features features =
        NamingErrors(name, [&] { return ComputeFbank(samples_16k, fbank); });
    if (features.num_frames < kMinFrames)
      throw Error(
          ErrorCode::kCorruptInput,
          name + ": too short to embed: " + std::to_string(samples_16k.size()) +
              " samples at 16 kHz give " + std::to_string(features.num_frames) +
              " frames, the model needs at least " +
              std::to_string(kMinFrames) + " (0.105 s)");
    SubtractMeanOverTime(features);
    return features;
  }

  std::vector<float> Run(std::span<const float> features, int batch,
                         int64_t frames) const {
    auto session = sessions->Borrow();
    return session->Run(features, batch, frames);
  }

  std::vector<float> EmbedWhole(std::span<const float> samples_16k,
                                const std::string& name) const {
    const Features features = FeaturesOf(samples_16k, name);
    return Run(features.values, 1, features.num_frames);
  }

  // Window `index` of `plan`, with its embedding: row `row` of `embeddings`.
  WindowEmbedding Window(const scoring::ChunkPlan& plan, size_t index,
                         double offset_s, std::span<const float> embeddings,
                         size_t row) const {
    WindowEmbedding window;
    window.start_s =
        offset_s + static_cast<double>(plan.starts[index]) / kModelSampleRateHz;
    window.end_s = window.start_s +
                   static_cast<double>(plan.chunk_samples) / kModelSampleRateHz;
    const auto first = embeddings.begin() + row * embedding_dim;
    window.embedding.assign(first, first + embedding_dim);
    return window;
  }

  std::vector<WindowEmbedding> EmbedSliding(std::span<const float> samples_16k,
                                            const EmbedRequest& request,
                                            double offset_s,
                                            const std::string& name) const {
    const scoring::ChunkPlan plan = scoring::PlanChunks(
        static_cast<int64_t>(samples_16k.size()), request.window_duration_s,
        request.window_step_s, kModelSampleRateHz);
    const int64_t frames = fbank.NumFrames(plan.chunk_samples);
    if (frames < kMinFrames)
      throw Error(ErrorCode::kInvalidArgument,
                  "window duration " + Seconds(request.window_duration_s) +
                      " is too short: the model needs at least 0.105 s");
    if (request.shared_trunk)
      return EmbedSlidingShared(samples_16k, plan, frames, offset_s, name);
    const int bins = fbank.num_mel_bins;
    const int64_t per_batch =
        std::clamp<int64_t>(kMaxBatchFrames / frames, 1, kMaxBatchWindows);
    std::vector<WindowEmbedding> windows;
    windows.reserve(plan.starts.size());
    std::vector<float> chunk(plan.chunk_samples);
    std::vector<float> batch_features;
    for (size_t first = 0; first < plan.starts.size(); first += per_batch) {
      const size_t count =
          std::min<size_t>(per_batch, plan.starts.size() - first);
      batch_features.resize(count * frames * bins);
      for (size_t i = 0; i < count; ++i) {
        // Each chunk is zero-padded to full length before its own fbank and
        // mean subtraction, exactly as pyannote batches them.
        const int64_t start = plan.starts[first + i];
        const int64_t available = std::clamp<int64_t>(
            static_cast<int64_t>(samples_16k.size()) - start, 0,
            plan.chunk_samples);
        std::fill(chunk.begin(), chunk.end(), 0.0f);
        std::copy_n(samples_16k.begin() + start, available, chunk.begin());
        const Features features = FeaturesOf(chunk, name);
        std::copy(features.values.begin(), features.values.end(),
                  batch_features.begin() + i * frames * bins);
      }
      const std::vector<float> embeddings =
          Run(batch_features, static_cast<int>(count), frames);
      for (size_t i = 0; i < count; ++i)
        windows.push_back(Window(plan, first + i, offset_s, embeddings, i));
    }
    return windows;
  }

  // Features of the whole input (normalised by its mean), one trunk run,
  // each window pooled from it (EmbedRequest::shared_trunk).
  std::vector<WindowEmbedding> EmbedSlidingShared(
      std::span<const float> samples_16k, const scoring::ChunkPlan& plan,
      int64_t window_frames, double offset_s, const std::string& name) const {
    const Features features = FeaturesOf(samples_16k, name);
    const int64_t shift = fbank.FrameShiftSamples();
    std::vector<Session::FrameWindow> frame_windows;
    frame_windows.reserve(plan.starts.size());
    for (const int64_t start : plan.starts)
      frame_windows.push_back(
          {std::min((start + shift / 2) / shift, features.num_frames - 1),
           window_frames});
    const std::vector<float> embeddings = NamingErrors(name, [&] {
      auto session = sessions->Borrow();
      return session->RunSharedTrunk(features.values, features.num_frames,
                                     frame_windows);
    });
    std::vector<WindowEmbedding> windows;
    windows.reserve(plan.starts.size());
    for (size_t i = 0; i < plan.starts.size(); ++i)
      windows.push_back(Window(plan, i, offset_s, embeddings, i));
    return windows;
  }

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
                  name + ": start " + Seconds(*request.start_s) +
                      " is at or past the end of the audio (" +
                      Seconds(duration_s) + ")");
    // An end up to 10 ms past the end is rounding; beyond that, a mistake.
    if (last - total > kModelSampleRateHz / 100)
      throw Error(ErrorCode::kInvalidArgument,
                  name + ": end " + Seconds(*request.end_s) +
                      " is past the end of the audio (" + Seconds(duration_s) +
                      ")");
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

  // Opens the input once: a streaming input goes on from the decoder
  // already open, anything else is decoded into memory from it.
  EmbeddingResult EmbedStream(const pipeline::StreamOpener& open,
                              const std::string& name,
                              const EmbedRequest& request) const {
    request.Validate();
    std::unique_ptr<audio::StreamDecoder> first = open();
    if (!Streams(*first, request))
      return Embed(first->DecodeAll(), name, request);
    return EmbedLong(std::move(first), open, name);
  }

  EmbeddingResult EmbedLong(std::unique_ptr<audio::StreamDecoder> first,
                            const pipeline::StreamOpener& open,
                            const std::string& name) const {
    const auto started = std::chrono::steady_clock::now();
    // Pass 1 reuses the decoder already open; pass 2 opens the input again.
    const pipeline::StreamOpener reopen = [&] {
      return first ? std::move(first) : open();
    };
    auto session = sessions->Borrow();
    pipeline::LongAudioEmbedding embedded = NamingErrors(name, [&] {
      return pipeline::EmbedLongAudio(reopen, fbank, *session, name,
                                      kMinFrames);
    });
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
    PreparedInput input;
    EmbeddingResult& result = input.result;
    result.source = name;
    result.audio = decoded.info;
    result.mode = request.mode;
    result.shared_trunk = request.shared_trunk;

    // The reference resamples the whole file and cuts the excerpt from the
    // 16 kHz signal at floor(t * 16000) (cutting at the original rate first
    // moved 8 kHz excerpts by 6e-3, measured).
    input.samples_16k = Resample(
        decoded.mono.samples, decoded.mono.sample_rate_hz, kModelSampleRateHz);
    if (request.start_s || request.end_s) {
      input.offset_s = request.start_s.value_or(0.0);
      input.samples_16k = Excerpt(std::move(input.samples_16k), request, name);
    }
    result.duration_s =
        static_cast<double>(input.samples_16k.size()) / kModelSampleRateHz;
    return input;
  }

  EmbeddingResult Embed(const DecodedAudio& decoded, const std::string& name,
                        const EmbedRequest& request) const {
    const auto started = std::chrono::steady_clock::now();
    request.Validate();
    PreparedInput input = Prepare(decoded, name, request);
    EmbeddingResult& result = input.result;
    if (request.mode == WindowMode::kWhole)
      result.embedding = EmbedWhole(input.samples_16k, name);
    else
      result.windows =
          EmbedSliding(input.samples_16k, request, input.offset_s, name);
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
                             const EmbedRequest& request) const {
    const auto started = std::chrono::steady_clock::now();
    PreparedWhole prepared;
    try {
      std::unique_ptr<audio::StreamDecoder> decoder = open();
      if (Streams(*decoder, request)) {
        prepared.streams = true;
        return prepared;
      }
      PreparedInput input = Prepare(decoder->DecodeAll(), name, request);
      decoder.reset();
      prepared.features = FeaturesOf(input.samples_16k, name);
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
                 const EmbedRequest& request,
                 const Extractor::OutcomeCallback& on_outcome) const {
    request.Validate();
    const bool whole = request.mode == WindowMode::kWhole;
    std::optional<pipeline::Prefetcher<PreparedWhole>> prepared;
    if (whole)
      prepared.emplace(
          count,
          [&](size_t index) {
            return PrepareWhole(name_of(index), opener_of(index), request);
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
            auto session = sessions->Borrow();
            return session->RunMixed(inputs);
          }();
          // Each input is charged its share of the batched network run.
          const double network_s = SecondsSince(started);
          for (size_t i = 0; i < waiting.size(); ++i) {
            EmbeddingResult& result = *outcomes[waiting[i].slot].result;
            const auto first = embeddings.begin() + i * embedding_dim;
            result.embedding.assign(first, first + embedding_dim);
            result.processing_s = waiting[i].prepare_s +
                                  network_s *
                                      static_cast<double>(inputs[i].frames) /
                                      static_cast<double>(waiting_frames);
          }
        } catch (const Error& error) {
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
      BatchOutcome& outcome = outcomes.emplace_back();
      try {
        if (!whole) {
          outcome.result =
              EmbedStream(opener_of(index), name_of(index), request);
        } else if (PreparedWhole input = prepared->Next(); input.streams) {
          const pipeline::StreamOpener open = opener_of(index);
          outcome.result = EmbedLong(open(), open, name_of(index));
        } else {
          outcome = std::move(input.outcome);
          if (input.features) {
            waiting_frames += input.features->num_frames;
            waiting.push_back({outcomes.size() - 1, std::move(*input.features),
                               input.prepare_s});
          }
        }
      } catch (const Error& error) {
        outcome.result.reset();
        outcome.error = error;
      }
      // Nothing waiting for the network (sliding windows, failures): the
      // outcomes so far can go out at once.
      if (waiting.empty() || waiting_frames >= kRoundFrames) finish_round();
    }
    finish_round();
  }
};

Extractor::Extractor(const ExtractorOptions& options)
    : impl_(std::make_unique<Impl>()) {
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
}

Extractor::~Extractor() = default;

EmbeddingResult Extractor::EmbedFile(const std::string& path,
                                     const EmbedRequest& request) const {
  return impl_->EmbedStream(
      [&] {
        return audio::StreamDecoder::OpenFile(path,
                                              impl_->options.audio_limits);
      },
      path, request);
}

EmbeddingResult Extractor::EmbedBytes(std::span<const uint8_t> bytes,
                                      const std::string& name,
                                      const EmbedRequest& request) const {
  return impl_->EmbedStream(
      [&] {
        return audio::StreamDecoder::OpenBytes(bytes, name,
                                               impl_->options.audio_limits);
      },
      name, request);
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
  const int64_t expected =
      static_cast<int64_t>(batch) * frames * impl_->fbank.num_mel_bins;
  if (batch <= 0 || frames < Impl::kMinFrames ||
      static_cast<int64_t>(features.size()) != expected)
    throw Error(ErrorCode::kInvalidArgument,
                "features must be [batch, frames >= 9, " +
                    std::to_string(impl_->fbank.num_mel_bins) + "], got " +
                    std::to_string(features.size()) + " values for batch " +
                    std::to_string(batch) + " and " + std::to_string(frames) +
                    " frames");
  return impl_->Run(features, batch, frames);
}

const ModelInfo& Extractor::Model() const { return impl_->model_info; }
BackendInfo Extractor::Device() const { return impl_->backend->Info(); }
const std::string& Extractor::DeviceChoice() const {
  return impl_->device_choice;
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
      request, on_outcome);
}

}  // namespace voxprint
