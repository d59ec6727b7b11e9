#include "pipeline/long-audio.h"

#include <algorithm>
#include <span>
#include <utility>

#include "audio/streaming-resampler.h"
#include "backends/run-cancel.h"
#include "voxprint/error.h"

namespace voxprint::pipeline {
namespace {

// Samples gathered before one fbank call: large enough that per-call
// overheads vanish, small enough to stay a few hundred kilobytes.
constexpr size_t kFbankBlockSamples = 16 * kModelSampleRateHz;

// decode -> resample -> fbank frames, in order, a block at a time. Frames
// start at multiples of the frame shift and depend only on their own
// samples, so fbank over consecutive slices gives the whole signal's frames.
class FeatureStream {
 public:
  FeatureStream(std::unique_ptr<audio::StreamDecoder> decoder,
                const FbankOptions& fbank, const CancelToken& cancel,
                const std::string& name)
      : decoder_(std::move(decoder)),
        fbank_(fbank),
        cancel_(cancel),
        name_(name) {}

  // Replaces *rows with the next frames, row-major [n, bins]; returns n, 0
  // at the end.
  int64_t Next(std::vector<float>* rows) {
    rows->clear();
    while (!ended_) {
      cancel_.ThrowIfCancelled(name_);
      if (decoder_->Next(&decoded_)) {
        if (!resampler_) {
          resampler_ = std::make_unique<audio::StreamingResampler>(
              decoder_->SampleRateHz(), fbank_.sample_rate_hz);
        }
        resampler_->Push(decoded_, &pending_);
      } else {
        if (resampler_) resampler_->Finish(&pending_);
        ended_ = true;
      }
      if (pending_.size() >= kFbankBlockSamples || ended_) {
        const int64_t frames = Frames(rows);
        if (frames > 0) return frames;
      }
    }
    return 0;
  }

  // 16 kHz samples so far (all of them once Next() has returned 0).
  int64_t samples_16k() const {
    return samples_16k_ + static_cast<int64_t>(pending_.size());
  }
  AudioInfo Info() const { return decoder_->Info(); }

 private:
  int64_t Frames(std::vector<float>* rows) {
    const int64_t frames =
        fbank_.NumFrames(static_cast<int64_t>(pending_.size()));
    if (frames <= 0) return 0;
    const int64_t shift = fbank_.FrameShiftSamples();
    const int64_t used = (frames - 1) * shift + fbank_.FrameLengthSamples();
    Features features = ComputeFbank(
        std::span<const float>(pending_.data(), static_cast<size_t>(used)),
        fbank_);
    *rows = std::move(features.values);
    const int64_t consumed = frames * shift;
    samples_16k_ += consumed;
    pending_.erase(pending_.begin(),
                   pending_.begin() + static_cast<ptrdiff_t>(consumed));
    return frames;
  }

  std::unique_ptr<audio::StreamDecoder> decoder_;
  FbankOptions fbank_;
  CancelToken cancel_;
  std::string name_;
  std::unique_ptr<audio::StreamingResampler> resampler_;
  std::vector<float> decoded_;
  std::vector<float> pending_;  // 16 kHz samples not yet in a frame
  int64_t samples_16k_ = 0;
  bool ended_ = false;
};

}  // namespace

LongAudioEmbedding EmbedLongAudio(const StreamOpener& open,
                                  const FbankOptions& fbank, Session& session,
                                  const std::string& name, int64_t min_frames,
                                  const CancelToken& cancel) {
  const int bins = fbank.num_mel_bins;
  std::vector<float> rows;

  // Pass 1: the per-bin mean over all frames, summed as SubtractMeanOverTime
  // sums (frame by frame, in double) so the means are the same floats.
  std::vector<double> sums(static_cast<size_t>(bins), 0.0);
  int64_t total_frames = 0;
  LongAudioEmbedding result;
  {
    FeatureStream stream(open(), fbank, cancel, name);
    while (const int64_t n = stream.Next(&rows)) {
      for (int64_t t = 0; t < n; ++t) {
        const float* row = rows.data() + t * bins;
        for (int m = 0; m < bins; ++m) sums[m] += row[m];
      }
      total_frames += n;
    }
    result.info = stream.Info();
    result.samples_16k = stream.samples_16k();
  }
  if (total_frames < min_frames)
    throw Error(
        ErrorCode::kCorruptInput,
        name + ": too short to embed: " + std::to_string(result.samples_16k) +
            " samples at 16 kHz give " + std::to_string(total_frames) +
            " frames, the model needs at least " + std::to_string(min_frames));
  std::vector<float> means(static_cast<size_t>(bins));
  for (int m = 0; m < bins; ++m)
    means[m] = static_cast<float>(sums[m] / total_frames);

  // Pass 2: the network asks for tiles (with their halo) in increasing
  // order; `window` holds the mean-subtracted frames from the current tile's
  // first one on.
  FeatureStream stream(open(), fbank, cancel, name);
  std::vector<float> window;
  int64_t window_first = 0;  // frame index of window[0]
  int64_t produced = 0;      // frames read from the stream
  const auto drop_before = [&](int64_t first) {
    const int64_t held = static_cast<int64_t>(window.size()) / bins;
    const int64_t drop = std::clamp<int64_t>(first - window_first, 0, held);
    window.erase(window.begin(),
                 window.begin() + static_cast<ptrdiff_t>(drop * bins));
    window_first += drop;
  };
  const Session::FeatureSource source = [&](int64_t first, int64_t count,
                                            float* out) {
    if (first < window_first || count < 0 || first + count > total_frames)
      throw Error(ErrorCode::kInternal,
                  name + ": feature range requested out of order");
    drop_before(first);
    while (produced < first + count) {
      const int64_t n = stream.Next(&rows);
      if (n == 0)
        throw Error(ErrorCode::kCorruptInput,
                    name + ": the second decoding pass ended early (" +
                        std::to_string(produced) + " of " +
                        std::to_string(total_frames) + " frames)");
      for (int64_t t = 0; t < n; ++t) {
        float* row = rows.data() + t * bins;
        for (int m = 0; m < bins; ++m) row[m] -= means[m];
      }
      window.insert(window.end(), rows.begin(), rows.end());
      produced += n;
      drop_before(first);
    }
    std::copy_n(window.begin() + (first - window_first) * bins, count * bins,
                out);
  };
  {
    // The backend checks the token between its tiles too.
    const backends::RunCancelScope scope(cancel);
    result.embedding = session.RunWithFeatureSource(total_frames, bins, source);
  }
  window.clear();
  while (const int64_t n = stream.Next(&rows)) produced += n;
  if (produced != total_frames)
    throw Error(ErrorCode::kCorruptInput,
                name + ": the two decoding passes disagree (" +
                    std::to_string(total_frames) + " and " +
                    std::to_string(produced) + " frames)");
  result.frames = total_frames;
  return result;
}

}  // namespace voxprint::pipeline
