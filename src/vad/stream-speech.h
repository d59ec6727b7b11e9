// The speech of an input read block by block (internal): what
// VoiceActivityDetector::SpeechOfFile and the diarizer's first reading of a
// long input share.
#pragma once

#include "audio/stream-16k.h"
#include "voxprint/vad.h"

namespace voxprint::vad {

// Reads `stream` to its end through a ProbabilityStream, then
// SegmentsFromProbabilities with `options`. Callers validate `options`
// before opening the input (SegmentsFromProbabilities would refuse them only
// after the whole input was read).
FileSpeech SpeechOfStream(const VoiceActivityDetector& detector,
                          audio::Stream16k& stream, const VadOptions& options);

}  // namespace voxprint::vad
