// Audio input: any common file format in, mono 16 kHz float samples out.
//
// Decoding uses FFmpeg's libraries (libavformat/libavcodec), so the format is
// recognised by content, never by file name. Channels are downmixed by their
// mean and the result is resampled to 16 kHz with the same windowed-sinc
// kernel as torchaudio.functional.resample (Hann window, lowpass width 6,
// rolloff 0.99), which is what pyannote.audio feeds its models.
//
// All functions are thread-safe and throw voxprint::Error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace voxprint {

inline constexpr int kModelSampleRateHz = 16000;

// Bounds applied while decoding untrusted input.
struct AudioLimits {
  // Longest audio accepted, in seconds of the original stream (0 = no limit).
  double max_duration_s = 0.0;
  // Refuse streams with more channels than this.
  int max_channels = 64;
};

// What the file held before conversion.
struct AudioInfo {
  int sample_rate_hz = 0;   // original sample rate
  int channels = 0;         // original channel count
  int64_t frames = 0;       // decoded samples per channel, original rate
  std::string container;    // FFmpeg demuxer name, e.g. "wav", "ogg"
  std::string codec;        // FFmpeg decoder name, e.g. "pcm_s16le", "opus"
  double DurationSeconds() const {
    return sample_rate_hz > 0 ? static_cast<double>(frames) / sample_rate_hz
                              : 0.0;
  }
};

// Decoded audio: mono, float in [-1, 1], at `sample_rate_hz`.
struct MonoAudio {
  std::vector<float> samples;
  int sample_rate_hz = 0;
};

// Decoded audio before the resampler: mono at the original rate, plus info.
struct DecodedAudio {
  MonoAudio mono;
  AudioInfo info;
};

// Decodes a file. `name` in errors is the path. Throws kIoError when the file
// cannot be read, kUnsupportedInput when it is not audio, kCorruptInput when
// it holds no samples, kResourceLimit when beyond `limits`.
DecodedAudio DecodeAudioFile(const std::string& path,
                             const AudioLimits& limits = {});

// Same for bytes in memory (an upload); `name` is used in error messages.
DecodedAudio DecodeAudioBytes(std::span<const uint8_t> bytes,
                              const std::string& name,
                              const AudioLimits& limits = {});

// Mean of the channels of interleaved samples: result[i] = mean_c x[i*C + c],
// computed in float32 the way torch's mean(dim=0) does.
std::vector<float> DownmixToMono(std::span<const float> interleaved,
                                 int channels);

// torchaudio.functional.resample (sinc_interp_hann, lowpass_filter_width 6,
// rolloff 0.99) from `from_hz` to `to_hz`. Output length is
// ceil(to * n / from) with rates reduced by their gcd. Same rate: a copy.
std::vector<float> Resample(std::span<const float> samples, int from_hz,
                            int to_hz);

// Convenience: decode + resample to kModelSampleRateHz.
struct Audio16k {
  std::vector<float> samples;  // mono, 16 kHz
  AudioInfo info;              // of the original stream
};
Audio16k LoadAudio16k(const std::string& path, const AudioLimits& limits = {});
Audio16k LoadAudio16kFromBytes(std::span<const uint8_t> bytes,
                               const std::string& name,
                               const AudioLimits& limits = {});

}  // namespace voxprint
