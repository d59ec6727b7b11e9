// Resample against torchaudio 0.13 itself (run through /usr/bin/python3 and
// tests/support/torchaudio_resample.py), plus checks that need no oracle.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "audio/sinc-kernel.h"
#include "support/reference-kit.h"
#include "voxprint/audio.h"
#include "voxprint/error.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;
using testing::ReferenceDir;

constexpr const char* kPython = "/usr/bin/python3";

// Worst absolute difference to torchaudio allowed on signals within [-1.5,
// 1.5]. The sums are torch's own (float32 FMA chains in column order), so
// where our kernel equals torch's the output is bit-identical, and the tests
// demand that; elsewhere a few taps differ in the last bit (torch's SLEEF
// sin/cos against libm's), measured at most 2.4e-7 on the output.
constexpr double kMaxAbsErrorVsTorch = 5e-7;

int64_t ExpectedLength(int64_t n, int from_hz, int to_hz) {
  const int64_t g = std::gcd(from_hz, to_hz);
  const int64_t orig = from_hz / g, target = to_hz / g;
  return (target * n + orig - 1) / orig;
}

void WriteFloats(const fs::path& path, const std::vector<float>& values) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(values.data()),
            static_cast<std::streamsize>(values.size() * sizeof(float)));
  ASSERT_TRUE(out.good()) << path;
}

std::vector<float> ReadFloats(const fs::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  const auto bytes = static_cast<size_t>(in.tellg());
  std::vector<float> values(bytes / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(values.data()),
          static_cast<std::streamsize>(values.size() * sizeof(float)));
  return values;
}

// Runs jobs through torchaudio in one interpreter (importing torch is slow).
class TorchOracle {
 public:
  TorchOracle()
      : dir_(fs::temp_directory_path() /
             ("voxprint-audio-resample-" + std::to_string(::getpid()) + "-" +
              std::to_string(counter_++))) {
    fs::create_directories(dir_);
  }
  ~TorchOracle() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  // Empty when torchaudio can run, else why not.
  static std::string Unavailable() {
    static const std::string reason = [] {
      if (!fs::exists(kPython)) return std::string(kPython) + " is missing";
      const std::string command =
          std::string(kPython) + " " + Script() + " check > /dev/null 2>&1";
      if (std::system(command.c_str()) != 0) {
        return std::string(kPython) +
               " cannot import torch + torchaudio (needs Debian's "
               "python3-torchaudio)";
      }
      return std::string();
    }();
    return reason;
  }

  // Queues torchaudio.functional.resample(x, from_hz, to_hz); returns a
  // handle for Result().
  int AddResample(const std::vector<float>& x, int from_hz, int to_hz) {
    const int id = next_id_++;
    WriteFloats(In(id), x);
    jobs_ << "resample " << In(id).string() << " " << Out(id).string() << " "
          << from_hz << " " << to_hz << "\n";
    return id;
  }
  int AddMean(const std::vector<float>& interleaved, int channels) {
    const int id = next_id_++;
    WriteFloats(In(id), interleaved);
    jobs_ << "mean " << In(id).string() << " " << Out(id).string() << " "
          << channels << "\n";
    return id;
  }
  int AddKernel(int from_hz, int to_hz) {
    const int id = next_id_++;
    jobs_ << "kernel " << Out(id).string() << " " << from_hz << " " << to_hz
          << "\n";
    return id;
  }

  // Runs all queued jobs; false (with a test failure) when Python failed.
  bool Run() {
    const fs::path job_file = dir_ / "jobs.txt";
    {
      std::ofstream out(job_file);
      out << jobs_.str();
    }
    const std::string command = std::string(kPython) + " " + Script() +
                                " jobs " + job_file.string() + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) {
      ADD_FAILURE() << "popen failed: " << command;
      return false;
    }
    std::string output;
    char buffer[512];
    while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) {
      output += buffer;
    }
    const int status = ::pclose(pipe);
    if (status != 0) {
      ADD_FAILURE() << command << " failed (" << status << "):\n" << output;
      return false;
    }
    return true;
  }

  std::vector<float> Result(int id) const { return ReadFloats(Out(id)); }

 private:
  static std::string Script() {
    return (fs::path(VOXPRINT_SOURCE_DIR) / "tests" / "support" /
            "torchaudio_resample.py")
        .string();
  }
  fs::path In(int id) const { return dir_ / ("in" + std::to_string(id)); }
  fs::path Out(int id) const { return dir_ / ("out" + std::to_string(id)); }

  static inline int counter_ = 0;
  fs::path dir_;
  std::ostringstream jobs_;
  int next_id_ = 0;
};

#define REQUIRE_TORCHAUDIO()                                              \
  do {                                                                    \
    if (const std::string why = TorchOracle::Unavailable(); !why.empty()) \
      GTEST_SKIP() << "torchaudio cross-check skipped: " << why;          \
  } while (0)

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b,
                  size_t* where = nullptr) {
  double worst = 0.0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - b[i]);
    if (d > worst) {
      worst = d;
      if (where) *where = i;
    }
  }
  return worst;
}

TEST(AudioResampleTest, OutputLengthIsCeilOfTheRatio) {
  const int pairs[][2] = {{44100, 16000}, {48000, 16000}, {8000, 16000},
                          {22050, 16000}, {11025, 16000}, {16000, 8000},
                          {16000, 44100}, {12345, 16000}};
  for (const auto& pair : pairs) {
    for (int64_t n : {0, 1, 2, 3, 440, 441, 442, 1000, 4801}) {
      const std::vector<float> x(static_cast<size_t>(n), 0.25f);
      EXPECT_EQ(static_cast<int64_t>(Resample(x, pair[0], pair[1]).size()),
                ExpectedLength(n, pair[0], pair[1]))
          << pair[0] << " -> " << pair[1] << ", n = " << n;
    }
  }
  // The kit's lengths: 30 s at 44.1 kHz is 480000 samples at 16 kHz, and
  // the AAC file's 1323008 samples give 480003.
  EXPECT_EQ(ExpectedLength(1323000, 44100, 16000), 480000);
  EXPECT_EQ(Resample(std::vector<float>(1323008), 44100, 16000).size(),
            480003u);
}

TEST(AudioResampleTest, SameRateIsACopy) {
  const std::vector<float> x = {0.5f, -0.25f, 1e-30f, 3.0f};
  EXPECT_EQ(Resample(x, 16000, 16000), x);
  EXPECT_TRUE(Resample({}, 16000, 16000).empty());
}

TEST(AudioResampleTest, RejectsBadRates) {
  const std::vector<float> x(10, 0.0f);
  for (const auto& [from, to] :
       {std::pair{0, 16000}, std::pair{16000, 0}, std::pair{-8000, 16000}}) {
    try {
      Resample(x, from, to);
      ADD_FAILURE() << from << " -> " << to << " did not throw";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
  }
  // A ratio whose kernel would need gigabytes is refused, not attempted.
  EXPECT_THROW(Resample(x, 2147483647, 1), Error);
}

TEST(AudioResampleTest, SineStaysASineOfTheSameFrequency) {
  for (int from_hz : {8000, 22050, 44100, 48000}) {
    SCOPED_TRACE(from_hz);
    const double freq_hz = 440.0;
    std::vector<float> x(static_cast<size_t>(from_hz) * 2);
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] =
          static_cast<float>(0.5 * std::sin(2 * M_PI * freq_hz * i / from_hz));
    }
    const std::vector<float> y = Resample(x, from_hz, 16000);
    ASSERT_EQ(y.size(), 32000u);
    // Away from the zero-padded edges the output is the same sine sampled
    // at 16 kHz (the passband ripple of this filter is well below 1e-3).
    double worst = 0.0;
    for (size_t i = 800; i < y.size() - 800; ++i) {
      const double expected = 0.5 * std::sin(2 * M_PI * freq_hz * i / 16000.0);
      worst = std::max(worst, std::abs(y[i] - expected));
    }
    EXPECT_LT(worst, 2e-3);
  }
}

TEST(AudioResampleTest, RemovesWhatIsAboveTheNewNyquist) {
  auto rms_after = [](double freq_hz) {
    const int from_hz = 48000;
    std::vector<float> x(from_hz);
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = static_cast<float>(std::sin(2 * M_PI * freq_hz * i / from_hz));
    }
    const std::vector<float> y = Resample(x, from_hz, 16000);
    double sum = 0;
    for (size_t i = 500; i < y.size() - 500; ++i) sum += double{y[i]} * y[i];
    return std::sqrt(sum / (y.size() - 1000));
  };
  // A unit sine has an RMS of 0.707. The Hann-windowed sinc (cutoff 7.92
  // kHz) passes 4 kHz untouched and takes what would alias, 12 kHz, down
  // by more than 50 dB.
  EXPECT_NEAR(rms_after(4000.0), std::sqrt(0.5), 0.01);
  EXPECT_LT(rms_after(12000.0), 2e-3);
  EXPECT_LT(rms_after(9000.0), rms_after(7000.0) / 4);
}

TEST(AudioResampleTest, ConcurrentCallsAgree) {
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  std::vector<float> x(44100);
  for (float& v : x) v = noise(rng);
  // A rate pair used nowhere else, so the cached kernel is built while the
  // threads race for it.
  std::vector<std::vector<float>> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] { results[t] = Resample(x, 37800, 16000); });
  }
  for (std::thread& t : threads) t.join();
  const std::vector<float> serial = Resample(x, 37800, 16000);
  ASSERT_EQ(serial.size(), ExpectedLength(44100, 37800, 16000));
  for (const auto& r : results) EXPECT_TRUE(r == serial);
}

TEST(AudioResampleTest, KernelMatchesTorchaudio) {
  REQUIRE_TORCHAUDIO();
  const int pairs[][2] = {{44100, 16000}, {48000, 16000}, {8000, 16000},
                          {22050, 16000}, {11025, 16000}, {16000, 44100}};
  TorchOracle oracle;
  std::vector<int> ids;
  for (const auto& pair : pairs)
    ids.push_back(oracle.AddKernel(pair[0], pair[1]));
  ASSERT_TRUE(oracle.Run());
  for (size_t p = 0; p < std::size(pairs); ++p) {
    SCOPED_TRACE(std::to_string(pairs[p][0]) + " -> " +
                 std::to_string(pairs[p][1]));
    const audio::SincKernel kernel =
        audio::BuildSincKernel(pairs[p][0], pairs[p][1]);
    const std::vector<float> ours = audio::DenseSincKernel(kernel);
    const std::vector<float> theirs = oracle.Result(ids[p]);
    ASSERT_EQ(ours.size(), theirs.size());
    // Only taps where libm's float sin/cos and torch's SLEEF round
    // differently may differ, by about an ulp of the sin and cos values:
    // taps near a zero of the sinc lose relative accuracy to cancellation in
    // sin(t), so the bound is absolute (taps reach 0.4, whose ulp is 3e-8).
    size_t differ = 0;
    double worst = 0.0;
    for (size_t i = 0; i < ours.size(); ++i) {
      if (ours[i] == theirs[i]) continue;
      ++differ;
      const double diff = std::abs(static_cast<double>(ours[i]) - theirs[i]);
      worst = std::max(worst, diff);
      ASSERT_LE(diff, 2.5e-7)
          << "tap " << i << ": " << ours[i] << " vs " << theirs[i];
    }
    EXPECT_LE(differ, ours.size() / 100);
    std::cout << "[ kernel   ] " << pairs[p][0] << " -> " << pairs[p][1] << ": "
              << differ << " of " << ours.size() << " taps differ, by at most "
              << worst << "; stored taps " << kernel.taps.size() << "\n";
  }
}

// Whether our kernel for the pair is bit-identical to torchaudio's.
bool SameKernelAsTorch(const TorchOracle& oracle, int kernel_id, int from_hz,
                       int to_hz) {
  return audio::DenseSincKernel(audio::BuildSincKernel(from_hz, to_hz)) ==
         oracle.Result(kernel_id);
}

TEST(AudioResampleTest, MatchesTorchaudioOnRandomSignals) {
  REQUIRE_TORCHAUDIO();
  const int pairs[][2] = {{8000, 16000},  {44100, 16000}, {48000, 16000},
                          {22050, 16000}, {11025, 16000}, {16000, 8000},
                          {16000, 44100}, {32000, 16000}, {12345, 16000}};
  std::mt19937 rng(20240601);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  std::uniform_int_distribution<int> length(1, 100000);
  struct Job {
    int from_hz, to_hz, id, kernel_id;
    std::vector<float> x;
  };
  std::vector<Job> jobs;
  TorchOracle oracle;
  for (const auto& pair : pairs) {
    const int kernel_id = oracle.AddKernel(pair[0], pair[1]);
    // torch switches algorithm (and summation) when the padded input
    // passes 20480 samples: lengths on both sides of that are included.
    const audio::SincKernel kernel = audio::BuildSincKernel(pair[0], pair[1]);
    const int switch_at = 20480 - 2 * kernel.width - kernel.orig_rate;
    for (int n : {1, 2, 7, pair[0] / 100 + 1, switch_at, switch_at + 1,
                  length(rng), length(rng)}) {
      Job job{pair[0], pair[1], 0, kernel_id, std::vector<float>(n)};
      for (float& v : job.x) v = std::clamp(noise(rng), -1.5f, 1.5f);
      job.id = oracle.AddResample(job.x, job.from_hz, job.to_hz);
      jobs.push_back(std::move(job));
    }
  }
  ASSERT_TRUE(oracle.Run());
  double worst = 0.0;
  size_t outputs = 0, identical = 0;
  int exact_pairs = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Job& job = jobs[j];
    SCOPED_TRACE(std::to_string(job.from_hz) + " -> " +
                 std::to_string(job.to_hz) + ", " +
                 std::to_string(job.x.size()) + " samples");
    const bool same_kernel =
        SameKernelAsTorch(oracle, job.kernel_id, job.from_hz, job.to_hz);
    if (same_kernel && (j == 0 || jobs[j - 1].kernel_id != job.kernel_id)) {
      ++exact_pairs;
    }
    const std::vector<float> ours = Resample(job.x, job.from_hz, job.to_hz);
    const std::vector<float> theirs = oracle.Result(job.id);
    ASSERT_EQ(ours.size(), theirs.size());
    size_t where = 0;
    const double error = MaxAbsDiff(ours, theirs, &where);
    EXPECT_LE(error, same_kernel ? 0.0 : kMaxAbsErrorVsTorch)
        << "at " << where << ": " << ours[where] << " vs " << theirs[where]
        << (same_kernel ? " (same kernel as torch: must be bit-identical)"
                        : "");
    worst = std::max(worst, error);
    outputs += ours.size();
    for (size_t i = 0; i < ours.size(); ++i) identical += ours[i] == theirs[i];
  }
  // 8 and 48 kHz -> 16 kHz at least have torch's exact kernel.
  EXPECT_GE(exact_pairs, 2);
  std::cout << "[ accuracy ] " << jobs.size() << " random signals: max |ours"
            << " - torchaudio| " << worst << ", " << 100.0 * identical / outputs
            << "% of outputs bit-identical, " << exact_pairs << " of "
            << std::size(pairs)
            << " rate pairs with torch's exact kernel (bit-identical output)\n";
}

// pyannote.audio downmixes with torch's mean(dim=0); DownmixToMono sums in
// the same order. torch's vectorised loop adds channels in order, its scalar
// tail (the last frames % 8) from five channels on does not: there a last
// bit may differ.
TEST(AudioResampleTest, DownmixMatchesTorchMean) {
  REQUIRE_TORCHAUDIO();
  std::mt19937 rng(11);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  TorchOracle oracle;
  struct Job {
    int channels, id;
    std::vector<float> x;
  };
  std::vector<Job> jobs;
  for (int channels : {2, 3, 4, 6, 8}) {
    for (int frames : {1, 7, 100003}) {
      Job job{channels, 0, std::vector<float>(frames * channels)};
      for (float& v : job.x) v = noise(rng);
      job.id = oracle.AddMean(job.x, channels);
      jobs.push_back(std::move(job));
    }
  }
  ASSERT_TRUE(oracle.Run());
  for (const Job& job : jobs) {
    const std::vector<float> ours = DownmixToMono(job.x, job.channels);
    const std::vector<float> theirs = oracle.Result(job.id);
    ASSERT_EQ(ours.size(), theirs.size());
    const size_t frames = ours.size();
    const size_t exact_up_to = job.channels <= 4 ? frames : frames / 8 * 8;
    for (size_t i = 0; i < frames; ++i) {
      if (i < exact_up_to) {
        ASSERT_EQ(ours[i], theirs[i])
            << job.channels << " channels, frame " << i << " of " << frames;
      } else {
        ASSERT_NEAR(ours[i], theirs[i], 2.5e-7);
      }
    }
  }
}

// The whole chain on the kit's non-16 kHz files: our 16 kHz output against
// torchaudio resampling our own decoded original-rate samples. 8 and 48 kHz
// must come out bit-identical.
TEST(AudioResampleTest, KitFilesMatchTorchaudio) {
  VOXPRINT_REQUIRE_REFERENCE_KIT();
  REQUIRE_TORCHAUDIO();
  std::ifstream manifest_in(ReferenceDir() / "manifest.json");
  const nlohmann::json manifest = nlohmann::json::parse(manifest_in);
  TorchOracle oracle;
  struct Case {
    std::string audio;
    int64_t samples_16k;
    int rate_hz;
    Audio16k ours;
    int id, kernel_id;
  };
  std::vector<Case> cases;
  for (const auto& entry : manifest.at("cases")) {
    const std::string audio = entry.at("audio");
    const std::string path = (ReferenceDir() / audio).string();
    const DecodedAudio decoded = DecodeAudioFile(path);
    const int rate = decoded.mono.sample_rate_hz;
    if (rate == kModelSampleRateHz) continue;
    cases.push_back(
        {audio, entry.at("samples_16k").get<int64_t>(), rate,
         LoadAudio16k(path),
         oracle.AddResample(decoded.mono.samples, rate, kModelSampleRateHz),
         oracle.AddKernel(rate, kModelSampleRateHz)});
  }
  // stereo_44k.wav, sample_8k.wav, sample_48k_24bit.flac, mp3, m4a, webm.
  ASSERT_GE(cases.size(), 6u);
  ASSERT_TRUE(oracle.Run());
  for (const Case& c : cases) {
    const std::vector<float> theirs = oracle.Result(c.id);
    ASSERT_EQ(c.ours.samples.size(), theirs.size()) << c.audio;
    EXPECT_EQ(static_cast<int64_t>(theirs.size()), c.samples_16k) << c.audio;
    const bool same_kernel =
        SameKernelAsTorch(oracle, c.kernel_id, c.rate_hz, kModelSampleRateHz);
    if (c.rate_hz == 8000 || c.rate_hz == 48000) {
      EXPECT_TRUE(same_kernel) << c.audio;
    }
    size_t where = 0;
    const double error = MaxAbsDiff(c.ours.samples, theirs, &where);
    EXPECT_LE(error, same_kernel ? 0.0 : kMaxAbsErrorVsTorch)
        << c.audio << " at " << where;
    const double rel = testing::RelativeL2(c.ours.samples, theirs);
    std::cout << "[ accuracy ] " << c.audio << " (" << c.rate_hz
              << " Hz): max abs " << error << ", relative L2 " << rel
              << (same_kernel ? ", bit-identical kernel" : "") << "\n";
  }
}

// Not a pass/fail check: the speed of the 44.1 kHz path for the report.
TEST(AudioResampleTest, Speed) {
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  std::vector<float> stereo(44100 * 30 * 2);
  for (float& v : stereo) v = noise(rng);
  double best_ms = 1e9, best_resample_ms = 1e9;
  for (int run = 0; run < 5; ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<float> mono = DownmixToMono(stereo, 2);
    const auto t1 = std::chrono::steady_clock::now();
    const std::vector<float> y = Resample(mono, 44100, 16000);
    const auto t2 = std::chrono::steady_clock::now();
    ASSERT_EQ(y.size(), 480000u);
    best_ms = std::min(
        best_ms, std::chrono::duration<double, std::milli>(t2 - t0).count());
    best_resample_ms =
        std::min(best_resample_ms,
                 std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  std::cout << "[ timing   ] 30 s of 44.1 kHz stereo -> 16 kHz mono: "
            << best_ms << " ms (resample alone " << best_resample_ms
            << " ms)\n";
}

}  // namespace
}  // namespace voxprint
