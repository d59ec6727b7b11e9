// The Diarizer: decode once, speech segments, windows, embeddings in
// batches, clustering, turns.
#include "voxprint/diarizer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "audio/stream-16k.h"
#include "audio/stream-decoder.h"
#include "diarization/linkage.h"
#include "vad/stream-speech.h"
#include "voxprint/error.h"
#include "voxprint/features.h"

namespace voxprint {
namespace {

constexpr int kMaxBatchWindows = 1024;
// The network needs 9 frames (three stride-2 stages, then a standard
// deviation over at least two steps).
constexpr int64_t kMinFrames = 9;
// From this many windows (~25 min of continuous speech; a 16 MB distance
// matrix) the network's idle sessions are freed before clustering; below, a
// server's next request would pay more to prepare them again than is saved.
constexpr int64_t kWindowsWorthFreeingTheNetwork = 2000;

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

// Hands out each window's samples in order from a second pass over the
// input, keeping only what later windows still need.
class StreamedWindows {
 public:
  StreamedWindows(audio::Stream16k stream,
                  std::span<const DiarizationWindow> windows,
                  const std::string& name)
      : stream_(std::move(stream)), name_(name), keep_from_(windows.size()) {
    // The earliest start among windows i.. (windows are nearly sorted).
    int64_t earliest = std::numeric_limits<int64_t>::max();
    for (size_t i = windows.size(); i-- > 0;)
      keep_from_[i] = earliest = std::min(earliest, windows[i].start_sample);
  }
  std::span<const float> Samples(size_t index, const DiarizationWindow& w) {
    const int64_t keep = keep_from_[index];
    DropBefore(keep);
    while (begin_ + static_cast<int64_t>(buffer_.size()) < w.end_sample) {
      if (!stream_.Next(&buffer_))
        throw Error(ErrorCode::kCorruptInput,
                    "the input gave fewer samples on its second reading");
      DropBefore(keep);  // a long silence is not held while it is read
    }
    return std::span<const float>(buffer_).subspan(
        w.start_sample - begin_, w.end_sample - w.start_sample);
  }

 private:
  // Drops, in large steps, what no window from here on reads. The next
  // window may start past what was read so far (after a pause), so only
  // what the buffer holds can go.
  void DropBefore(int64_t keep) {
    const int64_t drop =
        std::min(keep - begin_, static_cast<int64_t>(buffer_.size()));
    if (drop > (int64_t{1} << 20)) {
      buffer_.erase(buffer_.begin(), buffer_.begin() + drop);
      begin_ += drop;
    }
  }

  audio::Stream16k stream_;
  std::string name_;
  std::vector<int64_t> keep_from_;
  std::vector<float> buffer_;
  int64_t begin_ = 0;  // sample index of buffer_[0]
};

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
  return DiarizeOpened(
      [&] { return audio::StreamDecoder::OpenFile(path, limits_); }, path,
      request);
}

Diarization Diarizer::DiarizeBytes(std::span<const uint8_t> bytes,
                                   const std::string& name,
                                   const DiarizeRequest& request) const {
  return DiarizeOpened(
      [&] { return audio::StreamDecoder::OpenBytes(bytes, name, limits_); },
      name, request);
}

Diarization Diarizer::DiarizeOpened(const Opener& open, const std::string& name,
                                    const DiarizeRequest& request) const {
  const auto started = std::chrono::steady_clock::now();
  Diarization result;
  try {
    request.Validate();
    const double hold_s = request.hold_audio_up_to_s;
    if (!(std::isfinite(hold_s) && hold_s >= 0.0))
      throw Error(ErrorCode::kInvalidArgument,
                  "hold_audio_up_to_s must be finite and >= 0");
    auto opened = [&] {
      std::unique_ptr<audio::StreamDecoder> decoder = open();
      decoder->SetCancel(request.cancel);
      return decoder;
    };
    std::unique_ptr<audio::StreamDecoder> decoder = opened();
    std::optional<Audio16k> held;
    if (hold_s > 0.0 && decoder->HeaderDurationSeconds() <= hold_s) {
      held = decoder->DecodeAll16kUnlessLonger(
          static_cast<int64_t>(std::ceil(hold_s * kModelSampleRateHz)));
      if (!held) decoder = opened();  // longer than its header said
    }
    if (held) {
      result = DiarizeSamples(held->samples, name, request);
      result.audio = held->info;
    } else {
      // First reading: the speech, block by block.
      audio::Stream16k first(std::move(decoder));
      FileSpeech speech = vad::SpeechOfStream(vad_, first, request.vad);
      // Second reading: the windows' samples, as they come.
      const std::vector<DiarizationWindow> windows = PlanDiarizationWindows(
          speech.segments, speech.samples_16k, request.windows);
      StreamedWindows samples(audio::Stream16k(opened()), windows, name);
      result = FromSpeech(name, request, speech.samples_16k,
                          std::move(speech.segments),
                          [&](size_t i, const DiarizationWindow& window) {
                            return samples.Samples(i, window);
                          });
      result.audio = speech.audio;
    }
  } catch (const Error& error) {
    Rethrow(error, name);
  }
  result.processing_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  return result;
}

Diarization Diarizer::DiarizeSamples(std::span<const float> samples,
                                     const std::string& name,
                                     const DiarizeRequest& request) const {
  const auto started = std::chrono::steady_clock::now();
  Diarization result;
  try {
    request.Validate();
    std::vector<SpeechSegment> speech =
        vad_.SpeechSegments(samples, request.vad, request.cancel);
    result = FromSpeech(
        name, request, static_cast<int64_t>(samples.size()), std::move(speech),
        [&](size_t, const DiarizationWindow& window) {
          return samples.subspan(window.start_sample,
                                 window.end_sample - window.start_sample);
        });
  } catch (const Error& error) {
    Rethrow(error, name);
  }
  result.processing_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  return result;
}

Diarization Diarizer::FromSpeech(const std::string& name,
                                 const DiarizeRequest& request, int64_t total,
                                 std::vector<SpeechSegment> speech,
                                 const WindowSamples& window_samples) const {
  Diarization result;
  result.source = name;
  result.audio.sample_rate_hz = kModelSampleRateHz;
  result.audio.channels = 1;
  result.audio.frames = total;
  result.duration_s = static_cast<double>(total) / kModelSampleRateHz;
  result.method = request.clustering.method;
  result.speech = std::move(speech);
  {
    for (const SpeechSegment& segment : result.speech)
      result.speech_s += segment.EndSeconds() - segment.StartSeconds();
    const std::vector<DiarizationWindow> windows =
        PlanDiarizationWindows(result.speech, total, request.windows);
    result.num_windows = static_cast<int64_t>(windows.size());
    if (windows.empty()) return result;  // no speech: nobody spoke

    const FbankOptions& fbank = extractor_.Fbank();
    const int64_t window_length =
        windows.front().end_sample - windows.front().start_sample;
    const int64_t frames = fbank.NumFrames(window_length);
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
        Features features =
            ComputeFbank(window_samples(first + w, window), fbank);
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
    // The clustering's distance matrix grows with the square of the windows
    // (n²/2 floats: 180 MB at 9,500 windows, 2 hours of speech); the
    // network's scratch memory (~300 MB for batches of 32 windows on the
    // CPU) is not needed while it exists.
    if (result.num_windows >= kWindowsWorthFreeingTheNetwork)
      extractor_.ReleaseIdleMemory();
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
  }
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
