#include "audio/sample-convert.h"

#include <cstring>

extern "C" {
#include <libavutil/samplefmt.h>
}

namespace voxprint::audio {
namespace {

// Integer PCM is scaled by a power of two, so these products are exact and
// equal libsndfile's (value * (1.0f / 0x8000)) and friends.
inline float ToFloat(uint8_t v) {
  return static_cast<float>(static_cast<int>(v) - 128) * (1.0f / 128.0f);
}
inline float ToFloat(int16_t v) {
  return static_cast<float>(v) * (1.0f / 32768.0f);
}
inline float ToFloat(int32_t v) {
  return static_cast<float>(v) * (1.0f / 2147483648.0f);
}
inline float ToFloat(int64_t v) {
  return static_cast<float>(v) * (1.0f / 9223372036854775808.0f);
}
inline float ToFloat(float v) { return v; }
inline float ToFloat(double v) { return static_cast<float>(v); }

// The buffers FFmpeg hands out are aligned, but memcpy keeps this free of
// alignment assumptions (and of UB when a caller passes unaligned data).
template <typename T>
inline T Load(const uint8_t* base, size_t index) {
  T value;
  std::memcpy(&value, base + index * sizeof(T), sizeof(T));
  return value;
}

template <typename T>
void Append(const uint8_t* const* planes, bool planar, int channels, int frames,
            std::vector<float>* mono) {
  const size_t start = mono->size();
  mono->resize(start + static_cast<size_t>(frames));
  float* out = mono->data() + start;
  const auto sample = [&](int channel, int frame) {
    return planar ? ToFloat(Load<T>(planes[channel], frame))
                  : ToFloat(Load<T>(
                        planes[0],
                        static_cast<size_t>(frame) * channels + channel));
  };
  if (channels == 1) {
    for (int i = 0; i < frames; ++i) out[i] = sample(0, i);
    return;
  }
  // Same float32 operations, in the same order, as DownmixToMono.
  const float count = static_cast<float>(channels);
  for (int i = 0; i < frames; ++i) {
    float sum = sample(0, i);
    for (int c = 1; c < channels; ++c) sum += sample(c, i);
    out[i] = sum / count;
  }
}

}  // namespace

bool AppendAsMono(int format, const uint8_t* const* planes, int channels,
                  int frames, std::vector<float>* mono) {
  if (channels <= 0 || frames <= 0) return frames == 0 && channels > 0;
  switch (static_cast<AVSampleFormat>(format)) {
    case AV_SAMPLE_FMT_U8:
      Append<uint8_t>(planes, false, channels, frames, mono);
      return true;
    case AV_SAMPLE_FMT_U8P:
      Append<uint8_t>(planes, true, channels, frames, mono);
      return true;
    case AV_SAMPLE_FMT_S16:
      Append<int16_t>(planes, false, channels, frames, mono);
      return true;
    case AV_SAMPLE_FMT_S16P:
      Append<int16_t>(planes, true, channels, frames, mono);
      return true;
    case AV_SAMPLE_FMT_S32:
      Append<int32_t>(planes, false, channels, frames, mono);
      return true;
    case AV_SAMPLE_FMT_S32P:
      Append<int32_t>(planes, true, channels, frames, mono);
      return true;
    case AV_SAMPLE_FMT_S64:
      Append<int64_t>(planes, false, channels, frames, mono);
      return true;
    case AV_SAMPLE_FMT_S64P:
      Append<int64_t>(planes, true, channels, frames, mono);
      return true;
    case AV_SAMPLE_FMT_FLT:
      Append<float>(planes, false, channels, frames, mono);
      return true;
    case AV_SAMPLE_FMT_FLTP:
      Append<float>(planes, true, channels, frames, mono);
      return true;
    case AV_SAMPLE_FMT_DBL:
      Append<double>(planes, false, channels, frames, mono);
      return true;
    case AV_SAMPLE_FMT_DBLP:
      Append<double>(planes, true, channels, frames, mono);
      return true;
    default:
      return false;
  }
}

}  // namespace voxprint::audio
