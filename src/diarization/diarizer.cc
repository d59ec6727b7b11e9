// The Diarizer: decode once, speech segments, windows, embeddings in
// batches, clustering, turns.
#include "voxprint/diarizer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include "diarization/linkage.h"
#include "voxprint/error.h"
#include "voxprint/features.h"

namespace voxprint {
namespace {

constexpr int kMaxBatchWindows = 1024;
// The network needs 9 frames (three stride-2 stages, then a standard
// deviation over at least two steps).
constexpr int64_t kMinFrames = 9;

// Prefixes an error with the input's name (keeping its code).
[[noreturn]] void Rethrow(const Error& error, const std::string& name) {
  const std::string message = error.what();
  if (message.rfind(name, 0) == 0) throw error;
  throw Error(error.code(), name + ": " + message);
}

std::string SpeakerLabel(size_t index) {
  char text[32];
  std::snprintf(text, sizeof text, "SPEAKER_%02zu", index);
  return text;
}

}  // namespace

void DiarizeRequest::Validate() const {
  vad.Validate();
  windows.Validate();
  clustering.Validate();
  if (batch_windows < 1 || batch_windows > kMaxBatchWindows)
    throw Error(ErrorCode::kInvalidArgument,
                "batch_windows must be from 1 to " +
                    std::to_string(kMaxBatchWindows) + ", got " +
                    std::to_string(batch_windows));
}

Diarizer::Diarizer(const Extractor& extractor, const VoiceActivityDetector& vad,
                   AudioLimits limits)
    : extractor_(extractor), vad_(vad), limits_(limits) {}

Diarization Diarizer::DiarizeFile(const std::string& path,
                                  const DiarizeRequest& request) const {
  request.Validate();
  const auto started = std::chrono::steady_clock::now();
  const Audio16k audio = LoadAudio16k(path, limits_);
  Diarization result = DiarizeSamples(audio.samples, path, request);
  result.audio = audio.info;
  result.processing_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  return result;
}

Diarization Diarizer::DiarizeBytes(std::span<const uint8_t> bytes,
                                   const std::string& name,
                                   const DiarizeRequest& request) const {
  request.Validate();
  const auto started = std::chrono::steady_clock::now();
  const Audio16k audio = LoadAudio16kFromBytes(bytes, name, limits_);
  Diarization result = DiarizeSamples(audio.samples, name, request);
  result.audio = audio.info;
  result.processing_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  return result;
}

Diarization Diarizer::DiarizeSamples(std::span<const float> samples,
                                     const std::string& name,
                                     const DiarizeRequest& request) const {
  try {
    request.Validate();
  } catch (const Error& error) {
    Rethrow(error, name);
  }
  const auto started = std::chrono::steady_clock::now();
  const auto total = static_cast<int64_t>(samples.size());
  Diarization result;
  result.source = name;
  result.audio.sample_rate_hz = kModelSampleRateHz;
  result.audio.channels = 1;
  result.audio.frames = total;
  result.duration_s = static_cast<double>(total) / kModelSampleRateHz;
  result.method = request.clustering.method;
  try {
    result.speech = vad_.SpeechSegments(samples, request.vad, request.cancel);
    for (const SpeechSegment& segment : result.speech)
      result.speech_s += segment.EndSeconds() - segment.StartSeconds();
    const std::vector<DiarizationWindow> windows =
        PlanDiarizationWindows(result.speech, total, request.windows);
    result.num_windows = static_cast<int64_t>(windows.size());
    if (windows.empty()) return result;  // no speech: nobody spoke

    const FbankOptions& fbank = extractor_.Fbank();
    const int64_t window_samples =
        windows.front().end_sample - windows.front().start_sample;
    const int64_t frames = fbank.NumFrames(window_samples);
    if (frames < kMinFrames)
      throw Error(
          ErrorCode::kCorruptInput,
          "too short to diarize: " + std::to_string(total) +
              " samples at 16 kHz (the network needs at least " +
              std::to_string((kMinFrames - 1) * fbank.FrameShiftSamples() +
                             fbank.FrameLengthSamples()) +
              ")");

    // Embeddings, one batch of windows' features at a time.
    const int dim = extractor_.EmbeddingDim();
    const int bins = fbank.num_mel_bins;
    std::vector<float> embeddings(windows.size() * static_cast<size_t>(dim));
    std::vector<float> batch_features;
    for (size_t first = 0; first < windows.size();
         first += static_cast<size_t>(request.batch_windows)) {
      request.cancel.ThrowIfCancelled(name);
      const size_t count =
          std::min<size_t>(request.batch_windows, windows.size() - first);
      batch_features.resize(count * frames * bins);
      for (size_t w = 0; w < count; ++w) {
        const DiarizationWindow& window = windows[first + w];
        Features features = ComputeFbank(
            samples.subspan(window.start_sample,
                            window.end_sample - window.start_sample),
            fbank);
        SubtractMeanOverTime(features);
        std::copy(features.values.begin(), features.values.end(),
                  batch_features.begin() + w * frames * bins);
      }
      const std::vector<float> batch = extractor_.EmbedFeatures(
          batch_features, static_cast<int>(count), frames);
      std::copy(batch.begin(), batch.end(), embeddings.begin() + first * dim);
      if (request.progress)
        request.progress(static_cast<int64_t>(first + count),
                         static_cast<int64_t>(windows.size()));
    }

    request.cancel.ThrowIfCancelled(name);
    std::vector<int> labels =
        request.clustering.method == ClusteringMethod::kSpectral
            ? diarization::SpectralClusters(embeddings, result.num_windows, dim,
                                            request.clustering, nullptr,
                                            request.cancel)
            : diarization::AgglomerativeClusters(embeddings, result.num_windows,
                                                 dim, request.clustering,
                                                 request.cancel);

    // Speakers numbered in order of their first window.
    std::map<int, int> renumber;
    for (int& label : labels) {
      const auto [it, added] =
          renumber.emplace(label, static_cast<int>(renumber.size()));
      label = it->second;
    }
    result.turns = TurnsFromWindowLabels(windows, labels);
    result.speakers.resize(renumber.size());
    for (size_t s = 0; s < result.speakers.size(); ++s) {
      result.speakers[s].label = SpeakerLabel(s);
      result.speakers[s].centroid.assign(dim, 0.0f);
    }
    std::vector<std::vector<double>> sums(result.speakers.size(),
                                          std::vector<double>(dim, 0.0));
    for (size_t w = 0; w < windows.size(); ++w) {
      ++result.speakers[labels[w]].windows;
      for (int k = 0; k < dim; ++k)
        sums[labels[w]][k] += embeddings[w * dim + k];
    }
    std::set<std::string> names;
    for (size_t s = 0; s < result.speakers.size(); ++s) {
      DiarizedSpeaker& speaker = result.speakers[s];
      for (int k = 0; k < dim; ++k)
        speaker.centroid[k] = static_cast<float>(
            sums[s][k] / static_cast<double>(speaker.windows));
      if (request.namer) {
        if (std::optional<SpeakerMatch> match =
                request.namer(speaker.centroid)) {
          speaker.name = match->name;
          speaker.name_similarity = match->similarity;
          // Two clusters may match one person: the second keeps its number.
          if (names.insert(match->name).second) speaker.label = match->name;
        }
      }
    }
    for (const SpeakerTurn& turn : result.turns)
      result.speakers[turn.speaker].speech_s +=
          turn.EndSeconds() - turn.StartSeconds();
  } catch (const Error& error) {
    Rethrow(error, name);
  }
  result.processing_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  return result;
}

std::string DiarizationRttm(const Diarization& diarization,
                            const std::string& uri) {
  std::string name = uri.empty() ? "audio" : uri;
  for (char& c : name)
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
        c == '\f')
      c = '_';
  std::string lines;
  char numbers[64];
  for (const SpeakerTurn& turn : diarization.turns) {
    std::snprintf(numbers, sizeof numbers, "%.3f %.3f", turn.StartSeconds(),
                  turn.EndSeconds() - turn.StartSeconds());
    lines += "SPEAKER " + name + " 1 " + numbers + " <NA> <NA> " +
             diarization.speakers[turn.speaker].label + " <NA> <NA>\n";
  }
  return lines;
}

}  // namespace voxprint
