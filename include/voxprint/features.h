// Kaldi filter-bank features, exactly as torchaudio.compliance.kaldi.fbank
// computes them with the settings WeSpeaker's ResNet models were trained on.
//
// Thread-safe; throws voxprint::Error.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace voxprint {

struct FbankOptions {
  int sample_rate_hz = 16000;
  float frame_length_ms = 25.0f;  // analysis window
  float frame_shift_ms = 10.0f;   // hop between frames
  int num_mel_bins = 80;
  float low_freq_hz = 20.0f;  // lowest mel bin edge
  float high_freq_hz = 0.0f;  // <= 0: offset from Nyquist
  float preemphasis = 0.97f;
  bool remove_dc_offset = true;
  float waveform_scale =
      32768.0f;  // samples in [-1,1] are scaled to int16 range
  // Fixed in this implementation (and by the model): Hamming window,
  // snip_edges=true, FFT size rounded up to a power of two, power spectrum,
  // log floored at float epsilon, no dither, no energy term.

  int FrameLengthSamples() const;  // 400 at 16 kHz
  int FrameShiftSamples() const;   // 160 at 16 kHz
  int FftSize() const;             // 512 at 16 kHz
  // Frames produced from `num_samples` samples (snip_edges): 0 if too short.
  int64_t NumFrames(int64_t num_samples) const;
  std::string ToString() const;
};

// Row-major [frames, num_mel_bins] features.
struct Features {
  std::vector<float> values;
  int64_t num_frames = 0;
  int num_bins = 0;
  const float* Row(int64_t frame) const {
    return values.data() + frame * num_bins;
  }
};

// Log mel filter-bank energies of `samples` (mono, options.sample_rate_hz).
// Throws kCorruptInput when the input is shorter than one frame.
// Not mean-normalised; see SubtractMeanOverTime.
Features ComputeFbank(std::span<const float> samples,
                      const FbankOptions& options = {});

// In place: subtract from every bin its mean over frames (what pyannote's
// WeSpeaker wrapper does before the network).
void SubtractMeanOverTime(Features& features);

}  // namespace voxprint
