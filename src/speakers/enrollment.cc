// From audio to an enrollment: checksum, embedding and the speech in it.
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "voxprint/audio.h"
#include "voxprint/error.h"
#include "voxprint/extractor.h"
#include "voxprint/speakers.h"
#include "voxprint/vad.h"

namespace voxprint {

namespace {

std::string Sha256Hex(std::span<const uint8_t> bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(),
                 nullptr) != 1)
    throw Error(ErrorCode::kInternal, "SHA-256 computation failed");
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

// Seconds of speech by energy: 30 ms frames whose RMS is within 35 dB of the
// loudest frame's and above -55 dBFS (a level below any speech recorded at a
// usable gain).
double EnergySpeechSeconds(std::span<const float> samples) {
  constexpr size_t kFrame = 480;  // 30 ms at 16 kHz
  std::vector<double> levels;
  for (size_t start = 0; start + kFrame <= samples.size(); start += kFrame) {
    double sum = 0.0;
    for (size_t i = start; i < start + kFrame; ++i)
      sum += static_cast<double>(samples[i]) * samples[i];
    levels.push_back(10.0 * std::log10(sum / kFrame + 1e-20));
  }
  if (levels.empty()) return 0.0;
  const double loudest = *std::max_element(levels.begin(), levels.end());
  const double floor = std::max(loudest - 35.0, -55.0);
  const auto frames =
      std::count_if(levels.begin(), levels.end(),
                    [&](double level) { return level > floor; });
  return static_cast<double>(frames) * kFrame / kVadSampleRateHz;
}

}  // namespace

struct SpeechMeter::Vad {
  explicit Vad(const std::string& path) : detector(path) {}
  VoiceActivityDetector detector;
};

SpeechMeter::SpeechMeter(const std::string& vad_model_path) {
  method_ = "energy";
  if (vad_model_path == "energy") return;
  std::string path;
  try {
    path = FindVadModel(vad_model_path);
  } catch (const Error&) {
    return;  // no model installed: the energy measure it is
  }
  vad_ = std::make_unique<Vad>(path);
  method_ = "silero-vad";
}

SpeechMeter::~SpeechMeter() = default;

SpeechMeasure SpeechMeter::Measure(std::span<const float> samples,
                                   const CancelToken& cancel) const {
  SpeechMeasure measure;
  measure.method = method_;
  measure.duration_s = static_cast<double>(samples.size()) / kVadSampleRateHz;
  if (vad_) {
    for (const SpeechSegment& segment :
         vad_->detector.SpeechSegments(samples, {}, cancel))
      measure.speech_s += segment.EndSeconds() - segment.StartSeconds();
  } else {
    measure.speech_s = EnergySpeechSeconds(samples);
  }
  size_t clipped = 0;
  for (const float x : samples) clipped += std::fabs(x) >= 0.999f;
  measure.clipped_fraction =
      samples.empty() ? 0.0 : static_cast<double>(clipped) / samples.size();
  if (measure.speech_s <= 0.0)
    measure.warnings.push_back("silence");
  else if (measure.speech_s < 3.0)
    measure.warnings.push_back("too_short");
  if (measure.clipped_fraction > 0.001) measure.warnings.push_back("clipping");
  return measure;
}

Enrollment PrepareEnrollment(const Extractor& extractor,
                             const SpeechMeter& meter,
                             std::span<const uint8_t> audio_bytes,
                             const std::string& source, SpeechMeasure* measure,
                             const CancelToken& cancel) {
  Enrollment enrollment;
  enrollment.source = source;
  enrollment.audio_sha256 = Sha256Hex(audio_bytes);
  // One decode serves the speech measure and the embedding: 16 kHz samples
  // embed as the file would (no second resampling at the model's rate).
  DecodedAudio audio = DecodeAudioBytes(audio_bytes, source);
  audio.mono.samples = Resample(audio.mono.samples, audio.mono.sample_rate_hz,
                                kModelSampleRateHz);
  audio.mono.sample_rate_hz = kModelSampleRateHz;
  if (cancel.Cancelled())
    throw Error(ErrorCode::kCancelled, source + ": cancelled");
  SpeechMeasure measured = meter.Measure(audio.mono.samples, cancel);
  EmbedRequest request;
  request.cancel = cancel;
  EmbeddingResult result = extractor.EmbedDecoded(audio, source, request);
  enrollment.embedding = std::move(result.embedding);
  enrollment.duration_s = audio.info.DurationSeconds();
  measured.duration_s = enrollment.duration_s;
  enrollment.speech_s = measured.speech_s;
  if (measure) *measure = std::move(measured);
  return enrollment;
}

}  // namespace voxprint
