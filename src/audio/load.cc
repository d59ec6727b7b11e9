#include <memory>
#include <span>
#include <string>

#include "audio/stream-decoder.h"
#include "voxprint/audio.h"

namespace voxprint {

// Decoded and resampled block by block (StreamDecoder::DecodeAll16k): memory
// follows the length at 16 kHz, never the original rate.

Audio16k LoadAudio16k(const std::string& path, const AudioLimits& limits) {
  return audio::StreamDecoder::OpenFile(path, limits)->DecodeAll16k();
}

Audio16k LoadAudio16kFromBytes(std::span<const uint8_t> bytes,
                               const std::string& name,
                               const AudioLimits& limits) {
  return audio::StreamDecoder::OpenBytes(bytes, name, limits)->DecodeAll16k();
}

}  // namespace voxprint
