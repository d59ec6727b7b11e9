// get_speech_timestamps' rules, on probabilities already computed.
#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

#include "voxprint/error.h"
#include "voxprint/vad.h"

namespace voxprint {
namespace {

double SamplesFromMs(double ms) { return kVadSampleRateHz * ms / 1000.0; }

}  // namespace

double VadOptions::NegThreshold() const {
  return neg_threshold ? *neg_threshold : std::max(threshold - 0.15, 0.01);
}

void VadOptions::Validate() const {
  auto fail = [](const std::string& what) {
    throw Error(ErrorCode::kInvalidArgument, "VAD option " + what);
  };
  if (!(threshold >= 0.0 && threshold <= 1.0))
    fail("threshold must be in [0, 1], got " + std::to_string(threshold));
  const double exit = NegThreshold();
  if (!(exit >= 0.0 && exit <= threshold))
    fail("neg_threshold must be in [0, threshold], got " +
         std::to_string(exit));
  const std::pair<const char*, double> durations[] = {
      {"min_speech_ms", min_speech_ms},
      {"min_silence_ms", min_silence_ms},
      {"speech_pad_ms", speech_pad_ms}};
  for (const auto& [name, value] : durations)
    if (!(std::isfinite(value) && value >= 0.0 && value <= 3.6e6))
      fail(std::string(name) + " must be between 0 and 3600000, got " +
           std::to_string(value));
}

std::string VadOptions::ToString() const {
  std::ostringstream text;
  text << "threshold=" << threshold << " neg_threshold=" << NegThreshold()
       << " min_speech_ms=" << min_speech_ms
       << " min_silence_ms=" << min_silence_ms
       << " speech_pad_ms=" << speech_pad_ms;
  return text.str();
}

std::vector<SpeechSegment> SegmentsFromProbabilities(
    std::span<const float> probabilities, int64_t total_samples,
    const VadOptions& options) {
  options.Validate();
  if (total_samples < 0)
    throw Error(ErrorCode::kInvalidArgument,
                "VAD: negative audio length " + std::to_string(total_samples));
  const double exit_threshold = options.NegThreshold();
  const double min_speech_samples = SamplesFromMs(options.min_speech_ms);
  const double min_silence_samples = SamplesFromMs(options.min_silence_ms);
  const double pad_samples = SamplesFromMs(options.speech_pad_ms);

  std::vector<SpeechSegment> segments;
  bool in_speech = false;
  int64_t start = 0;
  std::optional<int64_t> silence_start;  // a possible end of the segment
  for (size_t i = 0; i < probabilities.size(); ++i) {
    const double p = probabilities[i];
    const int64_t at = static_cast<int64_t>(i) * kVadChunkSamples;
    if (p >= options.threshold) {
      silence_start.reset();
      if (!in_speech) {
        in_speech = true;
        start = at;
      }
      continue;
    }
    if (!in_speech || p >= exit_threshold) continue;
    if (!silence_start) silence_start = at;
    if (static_cast<double>(at - *silence_start) < min_silence_samples)
      continue;
    if (static_cast<double>(*silence_start - start) > min_speech_samples)
      segments.push_back({start, *silence_start});
    in_speech = false;
    silence_start.reset();
  }
  // Speech still open at the end lasts to the end of the audio, even when
  // it was already falling silent (as get_speech_timestamps does).
  if (in_speech &&
      static_cast<double>(total_samples - start) > min_speech_samples)
    segments.push_back({start, total_samples});

  // Padding: the gap between two segments goes half to each when it is
  // shorter than two pads.
  for (size_t i = 0; i < segments.size(); ++i) {
    SpeechSegment& segment = segments[i];
    if (i == 0)
      segment.start_sample = std::max<int64_t>(
          0, static_cast<int64_t>(segment.start_sample - pad_samples));
    if (i + 1 < segments.size()) {
      SpeechSegment& next = segments[i + 1];
      const int64_t gap = next.start_sample - segment.end_sample;
      if (static_cast<double>(gap) < 2 * pad_samples) {
        segment.end_sample += gap / 2;
        next.start_sample = std::max<int64_t>(0, next.start_sample - gap / 2);
      } else {
        segment.end_sample = std::min<int64_t>(
            total_samples,
            static_cast<int64_t>(segment.end_sample + pad_samples));
        next.start_sample = std::max<int64_t>(
            0, static_cast<int64_t>(next.start_sample - pad_samples));
      }
    } else {
      segment.end_sample = std::min<int64_t>(
          total_samples,
          static_cast<int64_t>(segment.end_sample + pad_samples));
    }
  }
  return segments;
}

}  // namespace voxprint
