#include "pipeline/sample-embedder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <future>
#include <system_error>
#include <thread>

#include "backends/run-cancel.h"
#include "voxprint/error.h"

namespace voxprint::pipeline {
namespace {

// Sliding windows run in batches of equal shape, at most this many per
// network run (and at most the backend's batch_frames).
constexpr int64_t kMaxBatchWindows = 32;
// Long inputs have their fbank computed on several threads, this many
// frames (2.5 s) or more each: ~1 ms of work, ~20x a thread's start.
constexpr int64_t kFramesPerFbankThread = 250;
constexpr int64_t kMaxFbankThreads = 8;

// Each fbank frame depends on its own samples only, so a long input's frames
// are split among threads, each computing its range from its span of the
// samples: the same values as one call.
Features ParallelFbank(std::span<const float> samples,
                       const FbankOptions& options) {
  const int64_t frames =
      options.NumFrames(static_cast<int64_t>(samples.size()));
  const int64_t threads = std::min<int64_t>(
      {kMaxFbankThreads, frames / kFramesPerFbankThread,
       static_cast<int64_t>(std::thread::hardware_concurrency())});
  // Bad samples: one call reports them with their index in the input.
  if (threads <= 1 || !std::all_of(samples.begin(), samples.end(),
                                   [](float x) { return std::isfinite(x); }))
    return ComputeFbank(samples, options);

  Features all;
  all.num_frames = frames;
  all.num_bins = options.num_mel_bins;
  all.values.resize(static_cast<size_t>(frames) * all.num_bins);
  const int64_t shift = options.FrameShiftSamples();
  const int64_t length = options.FrameLengthSamples();
  std::vector<std::exception_ptr> errors(threads);
  std::vector<std::thread> workers;
  const auto work = [&](int64_t part) {
    try {
      const int64_t first = frames * part / threads;
      const int64_t last = frames * (part + 1) / threads;
      const Features range = ComputeFbank(
          samples.subspan(first * shift, (last - 1 - first) * shift + length),
          options);
      std::copy(range.values.begin(), range.values.end(),
                all.values.begin() + first * all.num_bins);
    } catch (...) {
      errors[part] = std::current_exception();
    }
  };
  try {
    for (int64_t part = 0; part < threads; ++part)
      workers.emplace_back(work, part);
  } catch (const std::system_error&) {  // no thread to be had: one call
    for (auto& worker : workers) worker.join();
    return ComputeFbank(samples, options);
  }
  for (auto& worker : workers) worker.join();
  for (const auto& error : errors)
    if (error) std::rethrow_exception(error);
  return all;
}

// "100", "1.5e+07": a number in a message (no integer conversion).
std::string Number(double x) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", x);
  return text;
}

}  // namespace

std::string SecondsText(double s) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g s", s);
  return text;
}

void CheckFinite(std::span<const float> embeddings, const std::string& what) {
  const auto bad = std::find_if(embeddings.begin(), embeddings.end(),
                                [](float x) { return !std::isfinite(x); });
  if (bad == embeddings.end()) return;
  throw Error(ErrorCode::kInternal,
              what +
                  ": the model produced non-finite values (NaN/Inf) in the "
                  "embedding; its weights overflow float32 arithmetic (a "
                  "damaged or hostile model file, not a usable WeSpeaker "
                  "ResNet)");
}

SampleEmbedder::SampleEmbedder(const FbankOptions& fbank, SessionPool& sessions,
                               int embedding_dim, int64_t batch_frames,
                               RequestBatcher* batcher,
                               WindowLimits window_limits)
    : fbank_(fbank),
      sessions_(sessions),
      embedding_dim_(embedding_dim),
      batch_frames_(batch_frames),
      batcher_(batcher),
      window_limits_(window_limits) {}

Features SampleEmbedder::FeaturesOf(std::span<const float> samples_16k,
                                    const std::string& name) const {
  Features features =
      NamingErrors(name, [&] { return ParallelFbank(samples_16k, fbank_); });
  if (features.num_frames < kMinFrames)
    throw Error(
        ErrorCode::kCorruptInput,
        name + ": too short to embed: " + std::to_string(samples_16k.size()) +
            " samples at 16 kHz give " + std::to_string(features.num_frames) +
            " frames, the model needs at least " + std::to_string(kMinFrames) +
            " (0.105 s)");
  SubtractMeanOverTime(features);
  return features;
}

std::vector<float> SampleEmbedder::Run(std::span<const float> features,
                                       int batch, int64_t frames,
                                       const CancelToken& cancel,
                                       const std::string& name) const {
  std::vector<float> embeddings = NamingErrors(name, [&] {
    cancel.ThrowIfCancelled(name);
    const backends::RunCancelScope scope(cancel);
    auto session = sessions_.Borrow();
    return session->Run(features, batch, frames);
  });
  CheckFinite(embeddings, name);
  return embeddings;
}

std::vector<float> SampleEmbedder::EmbedWhole(
    std::span<const float> samples_16k, const std::string& name,
    const CancelToken& cancel) const {
  cancel.ThrowIfCancelled(name);
  const Features features = FeaturesOf(samples_16k, name);
  if (batcher_ == nullptr)
    return Run(features.values, 1, features.num_frames, cancel, name);
  std::vector<float> embedding = NamingErrors(name, [&] {
    return batcher_->Run(features.values, features.num_frames, cancel);
  });
  CheckFinite(embedding, name);
  return embedding;
}

void SampleEmbedder::CheckWindowWork(int64_t num_samples,
                                     const EmbedRequest& request,
                                     const std::string& name) const {
  const int rate = fbank_.sample_rate_hz;
  const int64_t chunk = scoring::SamplesInSeconds(request.window_duration_s,
                                                  rate, "window duration");
  const int64_t step =
      scoring::SamplesInSeconds(request.window_step_s, rate, "window step");
  if (chunk <= 0 || step <= 0) return;  // PlanChunks names these
  const int64_t windows = scoring::ChunkCount(num_samples, chunk, step);
  // Work in seconds of network input, against the audio (or one window,
  // when the audio is shorter: a single padded window is always allowed).
  const double audio_s =
      static_cast<double>(std::max(num_samples, chunk)) / rate;
  const double work_s =
      static_cast<double>(windows) * static_cast<double>(chunk) / rate;
  const double coverage = work_s / audio_s;
  const auto describe = [&] {
    return name + ": window step " + SecondsText(request.window_step_s) +
           " asks for " + std::to_string(windows) + " windows of " +
           SecondsText(request.window_duration_s) + " over " +
           SecondsText(static_cast<double>(num_samples) / rate) +
           " of audio (" + SecondsText(work_s) + " of network input, " +
           Number(std::ceil(coverage)) + "x the audio)";
  };
  if (windows > window_limits_.max_windows)
    throw Error(ErrorCode::kInvalidArgument,
                describe() + "; at most " +
                    std::to_string(window_limits_.max_windows) +
                    " windows are allowed per input: use a larger step");
  if (coverage > window_limits_.max_coverage + 1e-9)
    throw Error(ErrorCode::kInvalidArgument,
                describe() + "; the windows may cover at most " +
                    Number(window_limits_.max_coverage) +
                    "x the audio: use a step of at least " +
                    SecondsText(request.window_duration_s /
                                window_limits_.max_coverage));
}

WindowEmbedding SampleEmbedder::Window(const scoring::ChunkPlan& plan,
                                       size_t index, double offset_s,
                                       std::span<const float> embeddings,
                                       size_t row) const {
  WindowEmbedding window;
  window.start_s = offset_s + static_cast<double>(plan.starts[index]) /
                                  fbank_.sample_rate_hz;
  window.end_s = window.start_s + static_cast<double>(plan.chunk_samples) /
                                      fbank_.sample_rate_hz;
  const auto first = embeddings.begin() + row * embedding_dim_;
  window.embedding.assign(first, first + embedding_dim_);
  return window;
}

std::vector<float> SampleEmbedder::WindowFeatures(
    std::span<const float> samples_16k, const scoring::ChunkPlan& plan,
    int64_t frames, size_t first, size_t count, const std::string& name) const {
  const int bins = fbank_.num_mel_bins;
  const size_t per_window = static_cast<size_t>(frames) * bins;
  std::vector<float> out(count * per_window);
  const auto total = static_cast<int64_t>(samples_16k.size());
  const int64_t shift = fbank_.FrameShiftSamples();
  const int64_t base = plan.starts[first];

  // Overlapping windows inside the signal that start a whole number of
  // frames after the batch's first one are rows of one fbank of the span
  // they cover: one fbank per batch instead of one per window (duration /
  // step times less work for steps of whole frames, as pyannote's 1 s), the
  // same values.
  size_t shared = 0;
  while (plan.step_samples < plan.chunk_samples && shared < count) {
    const int64_t start = plan.starts[first + shared];
    if ((start - base) % shift != 0 || start + plan.chunk_samples > total)
      break;
    ++shared;
  }
  if (shared > 1) {
    const int64_t end = plan.starts[first + shared - 1] + plan.chunk_samples;
    const Features span = NamingErrors(name, [&] {
      return ComputeFbank(samples_16k.subspan(base, end - base), fbank_);
    });
    Features window;
    window.num_frames = frames;
    window.num_bins = bins;
    for (size_t i = 0; i < shared; ++i) {
      const int64_t row = (plan.starts[first + i] - base) / shift;
      window.values.assign(span.Row(row), span.Row(row) + per_window);
      SubtractMeanOverTime(window);
      std::copy(window.values.begin(), window.values.end(),
                out.begin() + i * per_window);
    }
  } else {
    shared = 0;
  }
  // The rest (a zero-padded last window): each chunk is zero-padded to full
  // length before its own fbank, exactly as pyannote batches them.
  std::vector<float> chunk(plan.chunk_samples);
  for (size_t i = shared; i < count; ++i) {
    const int64_t start = plan.starts[first + i];
    const int64_t available =
        std::clamp<int64_t>(total - start, 0, plan.chunk_samples);
    std::fill(chunk.begin(), chunk.end(), 0.0f);
    std::copy_n(samples_16k.begin() + start, available, chunk.begin());
    const Features features = FeaturesOf(chunk, name);
    std::copy(features.values.begin(), features.values.end(),
              out.begin() + i * per_window);
  }
  return out;
}

std::vector<WindowEmbedding> SampleEmbedder::EmbedSliding(
    std::span<const float> samples_16k, const EmbedRequest& request,
    double offset_s, const std::string& name) const {
  CheckWindowWork(static_cast<int64_t>(samples_16k.size()), request, name);
  request.cancel.ThrowIfCancelled(name);
  const scoring::ChunkPlan plan = scoring::PlanChunks(
      static_cast<int64_t>(samples_16k.size()), request.window_duration_s,
      request.window_step_s, fbank_.sample_rate_hz);
  const int64_t frames = fbank_.NumFrames(plan.chunk_samples);
  if (frames < kMinFrames)
    throw Error(ErrorCode::kInvalidArgument,
                "window duration " + SecondsText(request.window_duration_s) +
                    " is too short: the model needs at least 0.105 s");
  if (request.shared_trunk)
    return EmbedSlidingShared(samples_16k, plan, frames, offset_s,
                              request.cancel, name);
  const size_t num_windows = plan.starts.size();
  const auto per_batch = static_cast<size_t>(
      std::clamp<int64_t>(batch_frames_ / frames, 1, kMaxBatchWindows));
  const auto features_of_batch = [&](size_t first) {
    return WindowFeatures(samples_16k, plan, frames, first,
                          std::min(per_batch, num_windows - first), name);
  };
  std::vector<WindowEmbedding> windows;
  windows.reserve(num_windows);
  std::vector<float> features = features_of_batch(0);
  for (size_t first = 0; first < num_windows; first += per_batch) {
    const size_t count = std::min(per_batch, num_windows - first);
    // The next batch's features are computed while the network runs this
    // one (a GPU is otherwise idle during the fbank).
    const bool more = first + count < num_windows;
    std::future<std::vector<float>> next;
    try {
      if (more)
        next = std::async(std::launch::async, features_of_batch, first + count);
    } catch (const std::system_error&) {  // no thread: after this run
    }
    // Between batches: a cancelled request stops within one batch.
    const std::vector<float> embeddings = NamingErrors(name, [&] {
      request.cancel.ThrowIfCancelled(
          "window at " +
          SecondsText(offset_s + static_cast<double>(plan.starts[first]) /
                                     fbank_.sample_rate_hz));
      const backends::RunCancelScope scope(request.cancel);
      auto session = sessions_.Borrow();
      return session->Run(features, static_cast<int>(count), frames);
    });
    for (size_t i = 0; i < count; ++i) {
      windows.push_back(Window(plan, first + i, offset_s, embeddings, i));
      CheckFinite(windows.back().embedding,
                  name + ": window at " + SecondsText(windows.back().start_s));
    }
    if (more)
      features = next.valid() ? next.get() : features_of_batch(first + count);
  }
  return windows;
}

// Features of the whole input (normalised by its mean), one trunk run,
// each window pooled from it (EmbedRequest::shared_trunk).
std::vector<WindowEmbedding> SampleEmbedder::EmbedSlidingShared(
    std::span<const float> samples_16k, const scoring::ChunkPlan& plan,
    int64_t window_frames, double offset_s, const CancelToken& cancel,
    const std::string& name) const {
  const Features features = FeaturesOf(samples_16k, name);
  cancel.ThrowIfCancelled(name);
  const int64_t shift = fbank_.FrameShiftSamples();
  std::vector<Session::FrameWindow> frame_windows;
  frame_windows.reserve(plan.starts.size());
  for (const int64_t start : plan.starts)
    frame_windows.push_back(
        {std::min((start + shift / 2) / shift, features.num_frames - 1),
         window_frames});
  const std::vector<float> embeddings = NamingErrors(name, [&] {
    const backends::RunCancelScope scope(cancel);
    auto session = sessions_.Borrow();
    return session->RunSharedTrunk(features.values, features.num_frames,
                                   frame_windows);
  });
  std::vector<WindowEmbedding> windows;
  windows.reserve(plan.starts.size());
  for (size_t i = 0; i < plan.starts.size(); ++i) {
    windows.push_back(Window(plan, i, offset_s, embeddings, i));
    CheckFinite(windows.back().embedding,
                name + ": window at " + SecondsText(windows.back().start_s));
  }
  return windows;
}

}  // namespace voxprint::pipeline
