#include "vad/stream-speech.h"

#include <memory>
#include <utility>

#include "audio/stream-decoder.h"

namespace voxprint {
namespace vad {

FileSpeech SpeechOfStream(const VoiceActivityDetector& detector,
                          audio::Stream16k& stream, const VadOptions& options) {
  VoiceActivityDetector::ProbabilityStream probabilities_of(detector);
  std::vector<float> probabilities, block;
  FileSpeech speech;
  while (stream.Next(&block)) {
    probabilities_of.Push(block, &probabilities);
    speech.samples_16k += static_cast<int64_t>(block.size());
    block.clear();
  }
  probabilities_of.Finish(&probabilities);
  speech.segments =
      SegmentsFromProbabilities(probabilities, speech.samples_16k, options);
  speech.audio = stream.Info();
  return speech;
}

}  // namespace vad

FileSpeech VoiceActivityDetector::SpeechOfFile(
    const std::string& path, const VadOptions& options,
    const AudioLimits& limits, const CancelToken& cancel) const {
  options.Validate();  // before the file is opened
  std::unique_ptr<audio::StreamDecoder> decoder =
      audio::StreamDecoder::OpenFile(path, limits);
  decoder->SetCancel(cancel);
  audio::Stream16k stream(std::move(decoder));
  return vad::SpeechOfStream(*this, stream, options);
}

}  // namespace voxprint
