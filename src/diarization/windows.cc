// Windows inside speech segments, and speaker turns from their labels.
#include <algorithm>
#include <cmath>
#include <string>

#include "voxprint/diarizer.h"
#include "voxprint/error.h"

namespace voxprint {
namespace {

int64_t Samples(double seconds) {
  return static_cast<int64_t>(std::llround(seconds * kModelSampleRateHz));
}

}  // namespace

void DiarizationWindowOptions::Validate() const {
  if (!std::isfinite(window_s) || window_s < 0.1 || window_s > 60.0)
    throw Error(
        ErrorCode::kInvalidArgument,
        "window must be from 0.1 to 60 s, got " + std::to_string(window_s));
  if (!std::isfinite(step_s) || step_s < 0.01 || step_s > window_s)
    throw Error(ErrorCode::kInvalidArgument,
                "step must be from 0.01 s to the window (" +
                    std::to_string(window_s) + " s), got " +
                    std::to_string(step_s));
}

std::vector<DiarizationWindow> PlanDiarizationWindows(
    std::span<const SpeechSegment> segments, int64_t total_samples,
    const DiarizationWindowOptions& options) {
  options.Validate();
  const int64_t window = Samples(options.window_s);
  const int64_t step = Samples(options.step_s);
  std::vector<DiarizationWindow> windows;
  for (size_t s = 0; s < segments.size(); ++s) {
    // Clamped: a caller's segments may reach past the audio.
    const int64_t begin =
        std::clamp<int64_t>(segments[s].start_sample, 0, total_samples);
    const int64_t end =
        std::clamp<int64_t>(segments[s].end_sample, begin, total_samples);
    if (end <= begin) continue;
    if (total_samples <= window) {
      windows.push_back({0, total_samples, begin, end, s});
    } else if (end - begin <= window) {
      // Centred on the segment, moved back inside the audio.
      const int64_t start = std::clamp<int64_t>(
          begin - (window - (end - begin)) / 2, 0, total_samples - window);
      windows.push_back({start, start + window, begin, end, s});
    } else {
      int64_t start = begin;
      for (; start + window <= end; start += step)
        windows.push_back({start, start + window, start, start + window, s});
      if (windows.back().end_sample < end)
        windows.push_back({end - window, end, end - window, end, s});
    }
  }
  return windows;
}

std::vector<SpeakerTurn> TurnsFromWindowLabels(
    std::span<const DiarizationWindow> windows, std::span<const int> labels) {
  if (windows.size() != labels.size())
    throw Error(ErrorCode::kInvalidArgument,
                std::to_string(labels.size()) + " labels for " +
                    std::to_string(windows.size()) + " windows");
  std::vector<SpeakerTurn> turns;
  for (size_t i = 0; i < windows.size(); ++i) {
    const DiarizationWindow& window = windows[i];
    const bool same_segment_before =
        i > 0 && windows[i - 1].segment == window.segment;
    const bool same_segment_after =
        i + 1 < windows.size() && windows[i + 1].segment == window.segment;
    // From the middle of the overlap with the previous window to the middle
    // of the overlap with the next one (their meeting point when they do not
    // overlap).
    const int64_t from =
        same_segment_before
            ? std::max(window.speech_start,
                       (window.speech_start + windows[i - 1].speech_end) / 2)
            : window.speech_start;
    const int64_t to =
        same_segment_after
            ? std::min(window.speech_end,
                       (windows[i + 1].speech_start + window.speech_end) / 2)
            : window.speech_end;
    if (to <= from) continue;
    if (!turns.empty() && turns.back().speaker == labels[i] &&
        turns.back().end_sample == from)
      turns.back().end_sample = to;
    else
      turns.push_back({from, to, labels[i]});
  }
  return turns;
}

}  // namespace voxprint
