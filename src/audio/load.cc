#include <new>
#include <span>
#include <string>
#include <utility>

#include "voxprint/audio.h"
#include "voxprint/error.h"

namespace voxprint {
namespace {

Audio16k To16k(DecodedAudio decoded, const std::string& name) {
  Audio16k result;
  result.info = std::move(decoded.info);
  try {
    if (decoded.mono.sample_rate_hz == kModelSampleRateHz) {
      result.samples = std::move(decoded.mono.samples);
    } else {
      result.samples =
          Resample(decoded.mono.samples, decoded.mono.sample_rate_hz,
                   kModelSampleRateHz);
    }
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kResourceLimit,
                name + ": out of memory while resampling");
  }
  return result;
}

}  // namespace

Audio16k LoadAudio16k(const std::string& path, const AudioLimits& limits) {
  return To16k(DecodeAudioFile(path, limits), path);
}

Audio16k LoadAudio16kFromBytes(std::span<const uint8_t> bytes,
                               const std::string& name,
                               const AudioLimits& limits) {
  return To16k(DecodeAudioBytes(bytes, name, limits), name);
}

}  // namespace voxprint
