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

// Bounds applied while decoding untrusted input. They are enforced on the
// samples as they are decoded, whatever the container's header says, and
// decoding stops with kResourceLimit as soon as one is passed.
struct AudioLimits {
  // Longest audio accepted, in seconds of the original stream (0 = no limit).
  double max_duration_s = 0.0;
  // Refuse streams with more channels than this.
  int max_channels = 64;
  // The most samples one input may decode to, counted over all channels at
  // the original rate, and also as seconds x 16000 (what the audio becomes at
  // the model's rate). It bounds the decoding work when no duration limit is
  // set, and the work per second that a high rate or many channels would
  // multiply otherwise (0 = no limit). The default, 2^32, is about 24 hours
  // of 48 kHz mono or 12 hours of 48 kHz stereo.
  int64_t max_decoded_samples = int64_t{1} << 32;
};

// What the file held before conversion.
struct AudioInfo {
  int sample_rate_hz = 0;  // original sample rate
  int channels = 0;        // original channel count
  int64_t frames = 0;      // decoded samples per channel, original rate
  std::string container;   // FFmpeg demuxer name, e.g. "wav", "ogg"
  std::string codec;       // FFmpeg decoder name, e.g. "pcm_s16le", "opus"
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
//
// Details: the format is probed from the bytes (the name is never looked
// at); the first audio stream FFmpeg ranks best is used. Samples become float
// as libsndfile makes them (integers / 2^(bits-1), floats as they are), and
// FFmpeg's default handling of priming and padding applies (MP3 gapless, AAC
// priming, Opus pre-skip). Damaged packets are skipped as the ffmpeg tool
// skips them; decoding stops, keeping what it has, after 32 in a row or when
// the demuxer cannot go on. A stream that changes sample rate midway is
// brought to its first rate. Refused: sample rates outside 1 kHz..1.536 MHz
// and playlists (kUnsupportedInput), NaN or infinite samples (kCorruptInput).
// Demuxers never open other files or URLs.
DecodedAudio DecodeAudioFile(const std::string& path,
                             const AudioLimits& limits = {});

// Same for bytes in memory (an upload); `name` is used in error messages.
DecodedAudio DecodeAudioBytes(std::span<const uint8_t> bytes,
                              const std::string& name,
                              const AudioLimits& limits = {});

// Mean of the channels of interleaved samples: result[i] = mean_c x[i*C + c],
// computed in float32 the way torch's mean(dim=0) does (a sum over the
// channels in order, then one division). Throws kInvalidArgument when
// channels <= 0 or the size is not a multiple of it.
std::vector<float> DownmixToMono(std::span<const float> interleaved,
                                 int channels);

// torchaudio.functional.resample (sinc_interp_hann, lowpass_filter_width 6,
// rolloff 0.99) from `from_hz` to `to_hz`. Output length is
// ceil(to * n / from) with rates reduced by their gcd. Same rate: a copy.
// The kernel is built in float32 as torchaudio builds it for float32 audio
// (once per rate pair, cached); outputs agree with torchaudio's to a few
// float32 ulps. Throws kInvalidArgument for rates <= 0 or a ratio whose
// kernel would be unreasonably large (e.g. 2147483647 -> 1).
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
