#include "audio/sinc-kernel.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <numbers>
#include <numeric>
#include <string>
#include <utility>

#include "voxprint/error.h"

namespace voxprint::audio {
namespace {

constexpr int kLowpassFilterWidth = 6;
constexpr double kRolloff = 0.99;
// Beyond this many stored taps a rate pair is refused rather than built; the
// kit's pairs need a few thousand.
constexpr int64_t kMaxStoredTaps = int64_t{1} << 26;
constexpr size_t kMaxCachedKernels = 32;
// Taps smaller than this are left out when they lie outside the lowpass span.
constexpr float kNegligibleTap = 1e-20f;

// One tap, following torchaudio's expression order operation by operation.
// resample() passes the waveform's dtype to _get_sinc_resample_kernel, so for
// float32 audio every step runs in float32, Python scalars rounded to float:
//   idx = arange(-width, width + orig, dtype=float32) / orig
//   t = arange(0, -new, -1, dtype=float32) / new + idx
//   t *= base_freq; t.clamp_(-6, 6)
//   window = cos(t * pi / 6 / 2) ** 2
//   t *= pi
//   kernel = where(t == 0, 1, sin(t) / t); kernel *= window * scale
// torch evaluates sin and cos with SLEEF (1 ulp) where we use libm's, so a
// few taps may differ from torch's in the last bit.
struct TapMath {
  int orig;
  int new_rate;
  int width;
  float base_freq;
  float scale;

  float PhaseTime(int64_t phase) const {
    return static_cast<float>(-phase) / static_cast<float>(new_rate);
  }
  // Time, in units of the lowpass zero crossings, before the clamp.
  float Time(float phase_time, int64_t column) const {
    const float idx =
        static_cast<float>(column - width) / static_cast<float>(orig);
    return (phase_time + idx) * base_freq;
  }
  float Tap(float phase_time, int64_t column) const {
    constexpr float kPi = std::numbers::pi_v<float>;
    constexpr float kLimit = kLowpassFilterWidth;
    float t = std::clamp(Time(phase_time, column), -kLimit, kLimit);
    float window = std::cos(t * kPi / kLimit / 2.0f);
    window = window * window;
    t = t * kPi;
    const float value = t == 0.0f ? 1.0f : std::sin(t) / t;
    return value * (window * scale);
  }
};

}  // namespace

SincKernel BuildSincKernel(int from_hz, int to_hz) {
  if (from_hz <= 0 || to_hz <= 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "resample: sample rates must be positive, got " +
                    std::to_string(from_hz) + " -> " + std::to_string(to_hz));
  }
  const int gcd = std::gcd(from_hz, to_hz);
  TapMath math;
  math.orig = from_hz / gcd;
  math.new_rate = to_hz / gcd;
  // Python computes base_freq, width and scale in double.
  const double base_freq = std::min(math.orig, math.new_rate) * kRolloff;
  const double width = std::ceil(static_cast<double>(kLowpassFilterWidth) *
                                 math.orig / base_freq);
  const auto too_large = [&] {
    return Error(ErrorCode::kInvalidArgument,
                 "resample: " + std::to_string(from_hz) + " -> " +
                     std::to_string(to_hz) +
                     " Hz needs too large a kernel (rates reduce to " +
                     std::to_string(math.orig) + " -> " +
                     std::to_string(math.new_rate) + ")");
  };
  if (width > static_cast<double>(kMaxStoredTaps)) throw too_large();
  math.width = static_cast<int>(width);
  math.base_freq = static_cast<float>(base_freq);
  math.scale = static_cast<float>(base_freq / math.orig);

  SincKernel kernel;
  kernel.orig_rate = math.orig;
  kernel.new_rate = math.new_rate;
  kernel.width = math.width;
  const int64_t columns = kernel.DenseColumns();

  // Every tap whose time is clamped to +-6 holds one same value, about
  // sin(6 pi) / (6 pi) * cos(pi / 2)^2 in float32 ~ 1e-24, which moves a
  // float32 sum only in the rarest cases; where that saves most of the work
  // (44.1 kHz -> 16 kHz: 34 of 475 columns) only the span between them
  // (|t| < 6, about 2 * 6 * orig / base_freq columns) is stored. Small
  // kernels (8 or 48 kHz -> 16 kHz) are kept whole, so that even those taps
  // add into the sums as in torch, and so is any kernel whose clamped value
  // would not be negligible.
  const float clamped_tap = math.Tap(0.0f, columns + 10LL * math.orig);
  const double half_span = kLowpassFilterWidth / base_freq * math.orig;
  const int64_t trimmed_span = static_cast<int64_t>(2 * half_span) + 8;
  const bool trim =
      std::abs(clamped_tap) < kNegligibleTap && columns > 2 * trimmed_span;
  const int64_t span_estimate = trim ? trimmed_span : columns;
  if (span_estimate * math.new_rate > kMaxStoredTaps) throw too_large();

  kernel.first_tap.resize(math.new_rate);
  kernel.offsets.resize(math.new_rate + 1);
  kernel.taps.reserve(static_cast<size_t>(span_estimate * math.new_rate));
  std::vector<float> row;
  for (int j = 0; j < math.new_rate; ++j) {
    const float phase_time = math.PhaseTime(j);
    int64_t lo = 0, hi = columns;
    if (trim) {
      const double centre =
          math.width - static_cast<double>(phase_time) * math.orig;
      lo = std::max<int64_t>(
          0, static_cast<int64_t>(std::floor(centre - half_span)) - 2);
      hi = std::min<int64_t>(
          columns, static_cast<int64_t>(std::ceil(centre + half_span)) + 3);
    }
    row.clear();
    for (int64_t m = lo; m < hi; ++m) row.push_back(math.Tap(phase_time, m));
    size_t begin = 0, end = row.size();
    if (trim) {
      while (begin < end && row[begin] == clamped_tap) ++begin;
      while (end > begin && row[end - 1] == clamped_tap) --end;
    }
    kernel.first_tap[j] = lo + static_cast<int64_t>(begin);
    kernel.offsets[j] = static_cast<int64_t>(kernel.taps.size());
    kernel.taps.insert(kernel.taps.end(), row.begin() + begin,
                       row.begin() + end);
  }
  kernel.offsets[math.new_rate] = static_cast<int64_t>(kernel.taps.size());
  kernel.clamped_tap = trim ? clamped_tap : 0.0f;
  return kernel;
}

std::shared_ptr<const SincKernel> CachedSincKernel(int from_hz, int to_hz) {
  static std::mutex mutex;
  static std::map<std::pair<int, int>, std::shared_ptr<const SincKernel>> cache;
  const int gcd = (from_hz > 0 && to_hz > 0) ? std::gcd(from_hz, to_hz) : 1;
  const std::pair<int, int> key(from_hz / gcd, to_hz / gcd);
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  // Built outside the lock: two threads may race to build the same kernel,
  // which is harmless, while a slow build never blocks other rate pairs.
  auto kernel =
      std::make_shared<const SincKernel>(BuildSincKernel(from_hz, to_hz));
  std::lock_guard<std::mutex> lock(mutex);
  if (cache.size() >= kMaxCachedKernels) cache.clear();
  return cache.emplace(key, std::move(kernel)).first->second;
}

std::vector<float> DenseSincKernel(const SincKernel& kernel) {
  const int64_t columns = kernel.DenseColumns();
  std::vector<float> dense(static_cast<size_t>(kernel.new_rate * columns),
                           kernel.clamped_tap);
  for (int j = 0; j < kernel.new_rate; ++j) {
    for (int64_t i = kernel.offsets[j]; i < kernel.offsets[j + 1]; ++i) {
      dense[j * columns + kernel.first_tap[j] + (i - kernel.offsets[j])] =
          kernel.taps[i];
    }
  }
  return dense;
}

}  // namespace voxprint::audio
