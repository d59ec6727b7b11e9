#include "pipeline/signal-checks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "voxprint/audio.h"

namespace voxprint::pipeline {

namespace {

constexpr int kRate = kModelSampleRateHz;
constexpr int64_t kFrameSamples = kRate / 50;  // 20 ms frames
// Silence: no sample above -80 dBFS (16-bit dither is about -96 dBFS).
constexpr float kSilentPeak = 1e-4f;
// A frame is "sound" when within 30 dB of the loud frames; loud frames
// below -60 dBFS are no signal at all.
constexpr double kBelowLoudDb = 30.0;
constexpr double kFloorDb = -60.0;
// Full scale, and the share of samples there that is audible clipping.
constexpr float kFullScale = 0.999f;
constexpr double kClippedShare = 1e-3;

std::string Fixed(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  return text;
}

}  // namespace

std::vector<ResultWarning> SignalWarnings(std::span<const float> samples_16k) {
  std::vector<ResultWarning> warnings;
  const auto n = static_cast<int64_t>(samples_16k.size());
  if (n == 0) return warnings;
  float peak = 0.0f;
  int64_t clipped = 0;
  for (const float x : samples_16k) {
    const float magnitude = std::fabs(x);
    peak = std::max(peak, magnitude);
    if (magnitude >= kFullScale) ++clipped;
  }
  if (peak < kSilentPeak) {
    warnings.push_back(
        {"no_signal",
         "no signal: the audio is silent (peak below -80 dBFS), so its "
         "embedding says nothing about a speaker"});
    return warnings;
  }

  // Energy of each 20 ms frame, in dBFS; the loud level is the 95th
  // percentile (robust to a few clicks).
  std::vector<double> frame_db;
  for (int64_t first = 0; first < n; first += kFrameSamples) {
    const int64_t last = std::min(n, first + kFrameSamples);
    double energy = 0.0;
    for (int64_t i = first; i < last; ++i)
      energy += static_cast<double>(samples_16k[i]) * samples_16k[i];
    frame_db.push_back(10.0 * std::log10(energy / (last - first) + 1e-20));
  }
  std::vector<double> sorted = frame_db;
  const size_t loud_index = (sorted.size() * 95) / 100;
  std::nth_element(sorted.begin(), sorted.begin() + loud_index, sorted.end());
  const double loud_db = sorted[loud_index];
  if (loud_db < kFloorDb) {
    warnings.push_back(
        {"no_signal", "almost no signal: the loudest parts are at " +
                          Fixed(loud_db, 0) +
                          " dBFS, so its embedding says little about a "
                          "speaker"});
    return warnings;
  }
  const double threshold_db = loud_db - kBelowLoudDb;
  const auto active =
      std::count_if(frame_db.begin(), frame_db.end(),
                    [&](double db) { return db > threshold_db; });
  const double duration_s = static_cast<double>(n) / kRate;
  const double sound_s =
      std::min(duration_s, static_cast<double>(active) * kFrameSamples / kRate);
  if (sound_s < kMinSpeechSeconds) {
    warnings.push_back(
        {"short_speech",
         "only " + Fixed(sound_s, 1) +
             " s of sound above the background (under " +
             Fixed(kMinSpeechSeconds, 0) +
             " s of speech): similarities from this embedding are "
             "unreliable"});
  } else if (sound_s < 0.2 * duration_s) {
    warnings.push_back({"little_speech",
                        "almost no speech: sound above the background in "
                        "only " +
                            Fixed(100.0 * sound_s / duration_s, 0) +
                            " % of the audio (judged by energy)"});
  }
  if (clipped >= 10 && static_cast<double>(clipped) >= kClippedShare * n) {
    warnings.push_back({"clipping", Fixed(100.0 * clipped / n, 1) +
                                        " % of the samples are at full "
                                        "scale: the recording clips"});
  }
  return warnings;
}

std::vector<ResultWarning> LengthWarnings(double decoded_s, double header_s) {
  // Headers estimated from a bit rate (MP3) are off by a little.
  if (header_s > 0 && decoded_s < header_s - std::max(0.5, 0.02 * header_s))
    return {{"truncated", "only " + Fixed(decoded_s, 2) +
                              " s decoded where the file's header declares " +
                              Fixed(header_s, 2) +
                              " s: the file is probably truncated or "
                              "damaged"}};
  return {};
}

namespace {

uint32_t LittleEndian32(std::span<const uint8_t> bytes, size_t at) {
  return static_cast<uint32_t>(bytes[at]) |
         static_cast<uint32_t>(bytes[at + 1]) << 8 |
         static_cast<uint32_t>(bytes[at + 2]) << 16 |
         static_cast<uint32_t>(bytes[at + 3]) << 24;
}

bool TagAt(std::span<const uint8_t> bytes, size_t at, const char* tag) {
  return std::equal(tag, tag + 4, bytes.begin() + static_cast<ptrdiff_t>(at));
}

}  // namespace

double DeclaredSeconds(std::span<const uint8_t> head) {
  if (head.size() < 12 || !TagAt(head, 0, "RIFF") || !TagAt(head, 8, "WAVE"))
    return 0.0;
  uint32_t byte_rate = 0;
  // Chunks: 4-byte id, 4-byte size, the data padded to an even size.
  for (size_t at = 12; at + 8 <= head.size();) {
    const uint32_t size = LittleEndian32(head, at + 4);
    if (TagAt(head, at, "fmt ") && size >= 12 && at + 20 <= head.size())
      byte_rate = LittleEndian32(head, at + 16);
    if (TagAt(head, at, "data")) {
      // 0xFFFFFFFF and 0: streaming writers that did not know the length.
      if (byte_rate == 0 || size == 0 || size == 0xFFFFFFFFu) return 0.0;
      return static_cast<double>(size) / byte_rate;
    }
    at += 8 + static_cast<size_t>(size) + (size & 1);
  }
  return 0.0;
}

std::vector<uint8_t> FileHead(const std::string& path) {
  constexpr size_t kHeadBytes = 64 * 1024;
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) return {};
  std::ifstream file(path, std::ios::binary);
  std::vector<uint8_t> head(kHeadBytes);
  file.read(reinterpret_cast<char*>(head.data()),
            static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(std::max<std::streamsize>(0, file.gcount())));
  return head;
}

void MarkPaddedWindows(std::vector<WindowEmbedding>& windows,
                       double audio_end_s, bool drop_partial,
                       std::vector<ResultWarning>& warnings) {
  // Half a sample of slack: start and end are sums of sample counts / rate.
  const double slack = 0.5 / kRate;
  for (WindowEmbedding& window : windows) {
    window.padded = window.end_s > audio_end_s + slack;
    window.covered_end_s = std::min(window.end_s, audio_end_s);
  }
  if (drop_partial) {
    const auto complete =
        std::count_if(windows.begin(), windows.end(),
                      [](const WindowEmbedding& w) { return !w.padded; });
    if (complete > 0)
      std::erase_if(windows, [](const WindowEmbedding& w) { return w.padded; });
  }
  const auto padded =
      std::count_if(windows.begin(), windows.end(),
                    [](const WindowEmbedding& w) { return w.padded; });
  if (padded == 0) return;
  const WindowEmbedding& last = windows.back();
  const bool only_one = windows.size() == 1;
  warnings.push_back(
      {"padded_window",
       std::string(only_one ? "the audio is shorter than one window: "
                            : "the last window ") +
           "covers " + Fixed(last.start_s, 2) + "-" +
           Fixed(last.covered_end_s, 2) + " s and is zero-padded to " +
           Fixed(last.end_s, 2) +
           " s (as pyannote does); its embedding partly describes silence" +
           (only_one || drop_partial
                ? ""
                : " (the drop-partial option leaves it out)")});
}

}  // namespace voxprint::pipeline
