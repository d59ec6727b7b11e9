// Fuzz target: audio decoding of uploaded bytes (FFmpeg demuxers and
// decoders, downmix, resampling to 16 kHz), as the server and the CLI run it,
// and the checks behind a result's warnings (the WAV header's declared
// length, the signal's energy).
// Every failure must be a voxprint::Error; anything else (a crash, a
// sanitizer report, another exception, a hang, memory beyond the limit) is
// a finding.
#include <cstddef>
#include <cstdint>
#include <span>

#include "pipeline/signal-checks.h"
#include "voxprint/audio.h"
#include "voxprint/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The bound the server puts on uploads keeps a tiny file from decoding to
  // hours of audio; 60 s keeps each run short.
  voxprint::AudioLimits limits;
  limits.max_duration_s = 60.0;
  const std::span<const uint8_t> bytes(data, size);
  voxprint::pipeline::DeclaredSeconds(bytes);
  try {
    const voxprint::Audio16k audio =
        voxprint::LoadAudio16kFromBytes(bytes, "fuzz-input", limits);
    voxprint::pipeline::SignalWarnings(audio.samples);
  } catch (const voxprint::Error&) {
    // A refusal with a reason: what hostile input should get.
  }
  return 0;
}
