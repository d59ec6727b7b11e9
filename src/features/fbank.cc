// Kaldi fbank as torchaudio.compliance.kaldi.fbank computes it (torchaudio
// 0.13) with hamming window, snip_edges, power-of-two FFT, no dither and no
// energy term. Every float32 step follows torch's order of operations so that
// results agree to float rounding, not just approximately.
#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <numbers>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "features/fftw-planner.h"
#include "voxprint/error.h"
#include "voxprint/features.h"

namespace voxprint {

namespace {

constexpr double kMillisecondsToSeconds = 0.001;
// torchaudio floors energies at numeric_limits<float>::epsilon() before log.
constexpr float kLogFloor = std::numeric_limits<float>::epsilon();
// Above this a "frame" is no longer a speech analysis window; refusing it keeps
// absurd options from allocating gigabytes.
constexpr int64_t kMaxFrameLengthSamples = int64_t{1} << 20;
// Distinct option sets kept with their FFT plans; beyond this, kernels are
// built per call (correct, just slower).
constexpr size_t kMaxCachedKernels = 16;

// torchaudio: int(sample_frequency * ms * 0.001), in double, truncated.
int64_t MsToSamples(int sample_rate_hz, float ms) {
  const double samples = static_cast<double>(sample_rate_hz) *
                         static_cast<double>(ms) * kMillisecondsToSeconds;
  if (!std::isfinite(samples) || samples < 0.0) return 0;
  if (samples >= static_cast<double>(std::numeric_limits<int>::max()))
    return std::numeric_limits<int>::max();
  return static_cast<int64_t>(samples);
}

std::string FormatNumber(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

struct FftwFree {
  void operator()(void* p) const { fftwf_free(p); }
};
using RealBuffer = std::unique_ptr<float[], FftwFree>;
using ComplexBuffer = std::unique_ptr<fftwf_complex[], FftwFree>;

RealBuffer AllocReal(int n) {
  RealBuffer buffer(fftwf_alloc_real(static_cast<size_t>(n)));
  if (!buffer) throw Error(ErrorCode::kResourceLimit, "fbank: out of memory");
  return buffer;
}

ComplexBuffer AllocComplex(int n) {
  ComplexBuffer buffer(fftwf_alloc_complex(static_cast<size_t>(n)));
  if (!buffer) throw Error(ErrorCode::kResourceLimit, "fbank: out of memory");
  return buffer;
}

void ValidateOptions(const FbankOptions& o) {
  auto fail = [&](const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument,
                "fbank options " + o.ToString() + ": " + why);
  };
  if (o.sample_rate_hz <= 0) fail("sample_rate_hz must be positive");
  if (!(o.frame_length_ms > 0.0f) || !std::isfinite(o.frame_length_ms))
    fail("frame_length_ms must be positive");
  if (!(o.frame_shift_ms > 0.0f) || !std::isfinite(o.frame_shift_ms))
    fail("frame_shift_ms must be positive");
  const int64_t frame_length = o.FrameLengthSamples();
  if (frame_length < 2 || frame_length > kMaxFrameLengthSamples)
    fail("frame length must be 2 to " + std::to_string(kMaxFrameLengthSamples) +
         " samples, got " + std::to_string(frame_length));
  if (o.FrameShiftSamples() < 1) fail("frame shift is under one sample");
  if (o.num_mel_bins <= 3 || o.num_mel_bins > 4096)
    fail("num_mel_bins must be 4 to 4096");
  const double nyquist_hz = 0.5 * o.sample_rate_hz;
  const double low_hz = o.low_freq_hz;
  const double high_hz =
      o.high_freq_hz <= 0.0f ? o.high_freq_hz + nyquist_hz : o.high_freq_hz;
  if (!(low_hz >= 0.0 && low_hz < nyquist_hz && high_hz > 0.0 &&
        high_hz <= nyquist_hz && low_hz < high_hz))
    fail("need 0 <= low_freq_hz < high_freq_hz <= Nyquist (" +
         FormatNumber(nyquist_hz) + " Hz)");
  if (!(o.preemphasis >= 0.0f && o.preemphasis <= 1.0f))
    fail("preemphasis must be in [0, 1]");
  if (!std::isfinite(o.waveform_scale)) fail("waveform_scale must be finite");
}

// Everything that depends only on the options: window, mel filters, FFT plan.
// Immutable after construction, so one instance serves any number of threads.
class FbankKernel {
 public:
  explicit FbankKernel(const FbankOptions& options)
      : frame_length_(options.FrameLengthSamples()),
        fft_size_(options.FftSize()),
        num_bins_(options.num_mel_bins) {
    BuildWindow();
    BuildMelBanks(options);
    // Planned on fftwf_malloc'd arrays: callers execute on their own
    // fftwf_malloc'd arrays, which then have the required equal alignment.
    RealBuffer in = AllocReal(fft_size_);
    ComplexBuffer out = AllocComplex(fft_size_ / 2 + 1);
    std::lock_guard lock(FftwPlannerMutex());
    plan_ =
        fftwf_plan_dft_r2c_1d(fft_size_, in.get(), out.get(), FFTW_ESTIMATE);
    if (plan_ == nullptr)
      throw Error(ErrorCode::kInternal, "fbank: FFTW could not plan a " +
                                            std::to_string(fft_size_) +
                                            "-point FFT");
  }

  ~FbankKernel() {
    std::lock_guard lock(FftwPlannerMutex());
    fftwf_destroy_plan(plan_);
  }

  FbankKernel(const FbankKernel&) = delete;
  FbankKernel& operator=(const FbankKernel&) = delete;

  Features Compute(std::span<const float> samples,
                   const FbankOptions& options) const;

 private:
  // torch.hamming_window(N, periodic=False, alpha=0.54, beta=0.46) in float32:
  // arange * float(2 pi / (N - 1)), cos, * -beta, + alpha.
  void BuildWindow() {
    window_.resize(frame_length_);
    const auto step = static_cast<float>(
        2.0 * std::numbers::pi / static_cast<double>(frame_length_ - 1));
    for (int i = 0; i < frame_length_; ++i) {
      const float phase = static_cast<float>(i) * step;
      window_[i] = std::cos(phase) * -0.46f + 0.54f;
    }
  }

  // torchaudio's get_mel_banks: triangles in the mel domain evaluated on the
  // first fft_size/2 bins (float32 tensors built from double scalars), then a
  // zero column for the Nyquist bin. Stored sparsely: each filter is nonzero
  // on one contiguous run of bins.
  void BuildMelBanks(const FbankOptions& options) {
    const double nyquist_hz = 0.5 * options.sample_rate_hz;
    const double low_hz = options.low_freq_hz;
    const double high_hz = options.high_freq_hz <= 0.0f
                               ? options.high_freq_hz + nyquist_hz
                               : options.high_freq_hz;
    auto mel_scalar = [](double hz) {
      return 1127.0 * std::log(1.0 + hz / 700.0);
    };
    const double mel_low = mel_scalar(low_hz);
    const double mel_high = mel_scalar(high_hz);
    const auto delta =
        static_cast<float>((mel_high - mel_low) / (num_bins_ + 1));
    const auto mel_low_f = static_cast<float>(mel_low);
    const auto bin_width_hz = static_cast<float>(
        static_cast<double>(options.sample_rate_hz) / fft_size_);

    const int num_fft_bins = fft_size_ / 2;
    std::vector<float> fft_bin_mel(num_fft_bins);
    for (int k = 0; k < num_fft_bins; ++k) {
      const float hz = bin_width_hz * static_cast<float>(k);
      fft_bin_mel[k] = 1127.0f * std::log(1.0f + hz / 700.0f);
    }

    filter_first_.resize(num_bins_);
    filter_offset_.resize(num_bins_ + 1);
    filter_offset_[0] = 0;
    for (int m = 0; m < num_bins_; ++m) {
      const auto b = static_cast<float>(m);
      const float left = mel_low_f + b * delta;
      const float center = mel_low_f + (b + 1.0f) * delta;
      const float right = mel_low_f + (b + 2.0f) * delta;
      int first = -1;
      for (int k = 0; k < num_fft_bins; ++k) {
        const float up = (fft_bin_mel[k] - left) / (center - left);
        const float down = (right - fft_bin_mel[k]) / (right - center);
        const float weight = std::max(0.0f, std::min(up, down));
        if (weight > 0.0f) {
          if (first < 0) first = k;
          // Triangles are convex, so zeros inside the run cannot occur except
          // by rounding; keep them to stay contiguous.
          weights_.resize(filter_offset_[m] + (k - first) + 1, 0.0f);
          weights_[filter_offset_[m] + (k - first)] = weight;
        }
      }
      filter_first_[m] = first < 0 ? 0 : first;
      filter_offset_[m + 1] = static_cast<int>(weights_.size());
    }
  }

  int frame_length_;
  int fft_size_;
  int num_bins_;
  std::vector<float> window_;
  // Filter m covers FFT bins filter_first_[m] + [0, count) with weights
  // weights_[filter_offset_[m] + i], count = filter_offset_[m+1] - offset.
  std::vector<int> filter_first_;
  std::vector<int> filter_offset_;
  std::vector<float> weights_;
  fftwf_plan plan_ = nullptr;
};

Features FbankKernel::Compute(std::span<const float> samples,
                              const FbankOptions& options) const {
  const int64_t num_frames =
      options.NumFrames(static_cast<int64_t>(samples.size()));
  if (num_frames == 0) {
    throw Error(ErrorCode::kCorruptInput,
                "audio of " + std::to_string(samples.size()) + " samples (" +
                    FormatNumber(1000.0 * static_cast<double>(samples.size()) /
                                 options.sample_rate_hz) +
                    " ms at " + std::to_string(options.sample_rate_hz) +
                    " Hz) is shorter than one " +
                    FormatNumber(options.frame_length_ms) + " ms frame (" +
                    std::to_string(frame_length_) + " samples)");
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    if (!std::isfinite(samples[i]))
      throw Error(ErrorCode::kCorruptInput,
                  "audio sample " + std::to_string(i) + " is not finite (" +
                      FormatNumber(samples[i]) + ")");
  }

  const int64_t shift = options.FrameShiftSamples();
  const float scale = options.waveform_scale;
  const float preemphasis = options.preemphasis;
  const int num_spectrum_bins = fft_size_ / 2 + 1;

  Features features;
  features.num_frames = num_frames;
  features.num_bins = num_bins_;
  features.values.resize(static_cast<size_t>(num_frames) * num_bins_);

  RealBuffer frame = AllocReal(fft_size_);
  ComplexBuffer spectrum = AllocComplex(num_spectrum_bins);
  std::vector<float> power(num_spectrum_bins);
  std::fill(frame.get() + frame_length_, frame.get() + fft_size_, 0.0f);

  for (int64_t t = 0; t < num_frames; ++t) {
    // __restrict: the buffers never overlap, which lets the compiler
    // vectorise the per-sample loops below.
    const float* __restrict source = samples.data() + t * shift;
    const float* __restrict window = window_.data();
    float* __restrict x = frame.get();

    float mean = 0.0f;
    if (options.remove_dc_offset) {
      // torch.mean in float32; a double sum rounds to the same float or one
      // ulp off. Four partial sums break the add latency chain.
      double sum[4] = {0.0, 0.0, 0.0, 0.0};
      int i = 0;
      for (; i + 4 <= frame_length_; i += 4) {
        for (int j = 0; j < 4; ++j) sum[j] += source[i + j] * scale;
      }
      for (; i < frame_length_; ++i) sum[0] += source[i] * scale;
      mean = static_cast<float>((sum[0] + sum[1] + sum[2] + sum[3]) /
                                frame_length_);
    }
    // One pass, same float32 rounding steps as torchaudio's separate passes:
    // y = x * scale - mean; z[i] = y[i] - p * y[i-1] with y[-1] := y[0]
    // (replicate padding); then the window.
    const float y0 = source[0] * scale - mean;
    x[0] = (y0 - preemphasis * y0) * window[0];
    for (int i = 1; i < frame_length_; ++i) {
      const float y = source[i] * scale - mean;
      const float y_prev = source[i - 1] * scale - mean;
      x[i] = (y - preemphasis * y_prev) * window[i];
    }

    fftwf_execute_dft_r2c(plan_, x, spectrum.get());
    for (int k = 0; k < num_spectrum_bins; ++k) {
      const float re = spectrum[k][0];
      const float im = spectrum[k][1];
      power[k] = re * re + im * im;
    }

    float* out = features.values.data() + t * num_bins_;
    for (int m = 0; m < num_bins_; ++m) {
      const float* weight = weights_.data() + filter_offset_[m];
      const float* bins = power.data() + filter_first_[m];
      const int count = filter_offset_[m + 1] - filter_offset_[m];
      float energy = 0.0f;
      for (int i = 0; i < count; ++i) energy += weight[i] * bins[i];
      // Finite samples far outside [-1, 1] (a damaged float WAV) overflow
      // float32 energies; refuse them rather than return inf/NaN features.
      if (!(energy <= std::numeric_limits<float>::max()))
        throw Error(ErrorCode::kCorruptInput,
                    "audio samples near " + std::to_string(t * shift) +
                        " are too large for float32 energies (frame " +
                        std::to_string(t) + ")");
      out[m] = std::log(std::max(energy, kLogFloor));
    }
  }
  return features;
}

using KernelKey = std::tuple<int, int64_t, int, float, float>;

std::shared_ptr<const FbankKernel> GetKernel(const FbankOptions& options) {
  // Leaked on purpose (see FftwPlannerMutex).
  static auto* mutex = new std::mutex;
  static auto* cache =
      new std::map<KernelKey, std::shared_ptr<const FbankKernel>>;
  const KernelKey key{options.sample_rate_hz, options.FrameLengthSamples(),
                      options.num_mel_bins, options.low_freq_hz,
                      options.high_freq_hz};
  {
    std::lock_guard lock(*mutex);
    if (auto it = cache->find(key); it != cache->end()) return it->second;
  }
  // Built outside the cache lock; a concurrent duplicate is merely wasted.
  auto kernel = std::make_shared<const FbankKernel>(options);
  std::lock_guard lock(*mutex);
  if (cache->size() >= kMaxCachedKernels) return kernel;
  return cache->try_emplace(key, std::move(kernel)).first->second;
}

}  // namespace

int FbankOptions::FrameLengthSamples() const {
  return static_cast<int>(MsToSamples(sample_rate_hz, frame_length_ms));
}

int FbankOptions::FrameShiftSamples() const {
  return static_cast<int>(MsToSamples(sample_rate_hz, frame_shift_ms));
}

int FbankOptions::FftSize() const {
  const int length = FrameLengthSamples();
  int size = 1;
  while (size < length && size <= std::numeric_limits<int>::max() / 2)
    size *= 2;
  return size;
}

int64_t FbankOptions::NumFrames(int64_t num_samples) const {
  const int64_t length = FrameLengthSamples();
  const int64_t shift = FrameShiftSamples();
  if (length <= 0 || shift <= 0 || num_samples < length) return 0;
  return 1 + (num_samples - length) / shift;
}

std::string FbankOptions::ToString() const {
  std::ostringstream out;
  out << "FbankOptions(sample_rate_hz=" << sample_rate_hz
      << ", frame_length_ms=" << frame_length_ms
      << ", frame_shift_ms=" << frame_shift_ms
      << ", num_mel_bins=" << num_mel_bins << ", low_freq_hz=" << low_freq_hz
      << ", high_freq_hz=" << high_freq_hz << ", preemphasis=" << preemphasis
      << ", remove_dc_offset=" << (remove_dc_offset ? "true" : "false")
      << ", waveform_scale=" << waveform_scale
      << ", window=hamming, snip_edges=true, fft_size=" << FftSize()
      << ", dither=0, use_energy=false, log_floor=float_epsilon)";
  return out.str();
}

Features ComputeFbank(std::span<const float> samples,
                      const FbankOptions& options) {
  ValidateOptions(options);
  return GetKernel(options)->Compute(samples, options);
}

void SubtractMeanOverTime(Features& features) {
  const size_t expected_size =
      static_cast<size_t>(std::max<int64_t>(features.num_frames, 0)) *
      static_cast<size_t>(std::max(features.num_bins, 0));
  if (features.num_frames < 0 || features.num_bins < 0 ||
      features.values.size() != expected_size)
    throw Error(ErrorCode::kInvalidArgument,
                "SubtractMeanOverTime: features hold " +
                    std::to_string(features.values.size()) +
                    " values, not num_frames * num_bins = " +
                    std::to_string(features.num_frames) + " * " +
                    std::to_string(features.num_bins));
  if (features.num_frames == 0) return;
  const int num_bins = features.num_bins;
  // Sum frame by frame (contiguous rows), in double so 3000+ frames of values
  // around 10 lose nothing to float accumulation.
  std::vector<double> sums(num_bins, 0.0);
  for (int64_t t = 0; t < features.num_frames; ++t) {
    const float* row = features.Row(t);
    for (int m = 0; m < num_bins; ++m) sums[m] += row[m];
  }
  std::vector<float> means(num_bins);
  for (int m = 0; m < num_bins; ++m)
    means[m] = static_cast<float>(sums[m] / features.num_frames);
  for (int64_t t = 0; t < features.num_frames; ++t) {
    float* row = features.values.data() + t * num_bins;
    for (int m = 0; m < num_bins; ++m) row[m] -= means[m];
  }
}

}  // namespace voxprint
