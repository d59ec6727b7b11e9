// Unit tests of the fbank layer, plus a cross-check against torchaudio itself
// (tests/support/torchaudio_fbank.py under /usr/bin/python3) on random signals.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <numbers>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "support/fbank-compare.h"
#include "support/reference-kit.h"
#include "voxprint/error.h"
#include "voxprint/features.h"

namespace voxprint {
namespace {

namespace fs = std::filesystem;

constexpr int kRateHz = 16000;
const float kLogEpsilon = std::log(std::numeric_limits<float>::epsilon());

std::vector<float> Noise(size_t n, float amplitude, uint32_t seed) {
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, amplitude);
  std::vector<float> x(n);
  for (float& v : x) v = normal(generator);
  return x;
}

std::vector<float> Sine(size_t n, double hz, float amplitude) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i)
    x[i] = amplitude * static_cast<float>(
                           std::sin(2.0 * std::numbers::pi * hz * i / kRateHz));
  return x;
}

// Which error a call threw (or a failure if none / another type).
template <typename F>
::testing::AssertionResult ThrowsCode(F&& f, ErrorCode code,
                                      const std::string& fragment = "") {
  try {
    f();
  } catch (const Error& error) {
    if (error.code() != code)
      return ::testing::AssertionFailure()
             << "code " << ErrorCodeName(error.code()) << ": " << error.what();
    if (std::string(error.what()).find(fragment) == std::string::npos)
      return ::testing::AssertionFailure()
             << "message lacks '" << fragment << "': " << error.what();
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "nothing thrown";
}

TEST(FbankOptionsTest, DefaultGeometry) {
  const FbankOptions options;
  EXPECT_EQ(options.FrameLengthSamples(), 400);
  EXPECT_EQ(options.FrameShiftSamples(), 160);
  EXPECT_EQ(options.FftSize(), 512);
}

TEST(FbankOptionsTest, NumFramesFollowsSnipEdges) {
  const FbankOptions options;
  EXPECT_EQ(options.NumFrames(-1), 0);
  EXPECT_EQ(options.NumFrames(0), 0);
  EXPECT_EQ(options.NumFrames(399), 0);
  EXPECT_EQ(options.NumFrames(400), 1);
  EXPECT_EQ(options.NumFrames(559), 1);
  EXPECT_EQ(options.NumFrames(560), 2);
  EXPECT_EQ(options.NumFrames(480000), 2998);  // 30 s, as in the kit
  EXPECT_EQ(options.NumFrames(480001), 2998);
}

TEST(FbankOptionsTest, ToStringNamesTheSettings) {
  FbankOptions options;
  const std::string text = options.ToString();
  for (const char* part :
       {"sample_rate_hz=16000", "frame_length_ms=25", "frame_shift_ms=10",
        "num_mel_bins=80", "low_freq_hz=20", "high_freq_hz=0",
        "preemphasis=0.97", "remove_dc_offset=true", "waveform_scale=32768",
        "window=hamming", "snip_edges=true", "fft_size=512"}) {
    EXPECT_NE(text.find(part), std::string::npos) << part << " in " << text;
  }
  options.num_mel_bins = 64;
  EXPECT_NE(options.ToString().find("num_mel_bins=64"), std::string::npos);
}

TEST(FbankTest, TooShortInputIsCorruptInput) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{399}}) {
    const std::vector<float> x(n, 0.1f);
    EXPECT_TRUE(ThrowsCode([&] { ComputeFbank(x); }, ErrorCode::kCorruptInput,
                           "shorter than one 25 ms frame"))
        << n << " samples";
  }
}

TEST(FbankTest, ShapeFollowsNumFrames) {
  for (size_t n : {size_t{400}, size_t{559}, size_t{560}, size_t{16000}}) {
    const Features f = ComputeFbank(Noise(n, 0.1f, 7));
    EXPECT_EQ(f.num_frames, FbankOptions().NumFrames(n)) << n;
    EXPECT_EQ(f.num_bins, 80);
    EXPECT_EQ(f.values.size(), static_cast<size_t>(f.num_frames) * 80);
  }
}

TEST(FbankTest, SilenceIsLogEpsilonEverywhere) {
  const Features f = ComputeFbank(std::vector<float>(32000, 0.0f));
  ASSERT_EQ(f.num_frames, 198);
  for (float v : f.values) ASSERT_EQ(v, kLogEpsilon);
  Features normalised = f;
  SubtractMeanOverTime(normalised);
  for (float v : normalised.values) ASSERT_EQ(v, 0.0f);
}

TEST(FbankTest, NonFiniteSamplesAreRefused) {
  std::vector<float> x = Noise(1000, 0.1f, 3);
  x[500] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(ThrowsCode([&] { ComputeFbank(x); }, ErrorCode::kCorruptInput,
                         "sample 500"));
  x[500] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(ThrowsCode([&] { ComputeFbank(x); }, ErrorCode::kCorruptInput,
                         "not finite"));
  // Finite but absurd (a damaged float WAV): energies would overflow.
  x[500] = 1e30f;
  EXPECT_TRUE(ThrowsCode([&] { ComputeFbank(x); }, ErrorCode::kCorruptInput,
                         "too large"));
}

TEST(FbankTest, InvalidOptionsAreInvalidArgument) {
  const std::vector<float> x = Noise(16000, 0.1f, 5);
  auto expect_invalid = [&](FbankOptions options, const char* what) {
    EXPECT_TRUE(ThrowsCode([&] { ComputeFbank(x, options); },
                           ErrorCode::kInvalidArgument))
        << what;
  };
  FbankOptions o;
  o.sample_rate_hz = 0;
  expect_invalid(o, "zero rate");
  o = {};
  o.num_mel_bins = 3;
  expect_invalid(o, "3 mel bins");
  o = {};
  o.high_freq_hz = 9000.0f;
  expect_invalid(o, "high above Nyquist");
  o = {};
  o.low_freq_hz = 8000.0f;
  expect_invalid(o, "low at Nyquist");
  o = {};
  o.frame_length_ms = 0.1f;
  expect_invalid(o, "1-sample frame");
  o = {};
  o.frame_shift_ms = 0.0f;
  expect_invalid(o, "zero shift");
  o = {};
  o.frame_length_ms = std::numeric_limits<float>::infinity();
  expect_invalid(o, "infinite frame");
  o = {};
  o.preemphasis = 1.5f;
  expect_invalid(o, "preemphasis > 1");
}

TEST(FbankTest, MeanSubtractionLeavesZeroColumnMeans) {
  const Features raw = ComputeFbank(Noise(48000, 0.2f, 11));
  Features f = raw;
  SubtractMeanOverTime(f);
  ASSERT_EQ(f.values.size(), raw.values.size());
  for (int m = 0; m < f.num_bins; ++m) {
    double sum = 0.0;
    for (int64_t t = 0; t < f.num_frames; ++t) sum += f.Row(t)[m];
    EXPECT_NEAR(sum / f.num_frames, 0.0, 1e-5) << "bin " << m;
    // Only a per-bin constant was removed.
    const float shift0 = raw.Row(0)[m] - f.Row(0)[m];
    for (int64_t t = 1; t < f.num_frames; ++t)
      ASSERT_NEAR(raw.Row(t)[m] - f.Row(t)[m], shift0, 1e-5);
  }
}

TEST(FbankTest, MeanSubtractionChecksShape) {
  Features empty;
  EXPECT_NO_THROW(SubtractMeanOverTime(empty));
  Features bad;
  bad.num_frames = 2;
  bad.num_bins = 80;
  bad.values.resize(100);
  EXPECT_TRUE(ThrowsCode([&] { SubtractMeanOverTime(bad); },
                         ErrorCode::kInvalidArgument));
}

// A power-of-two gain scales every float step exactly, so the power spectrum
// is exactly 4x and each log energy moves by log(4) (up to log's rounding).
TEST(FbankTest, DoublingTheGainAddsLogFour) {
  const std::vector<float> x = Noise(8000, 0.05f, 13);
  std::vector<float> doubled(x.size());
  for (size_t i = 0; i < x.size(); ++i) doubled[i] = 2.0f * x[i];
  const Features a = ComputeFbank(x);
  const Features b = ComputeFbank(doubled);
  ASSERT_EQ(a.values.size(), b.values.size());
  for (size_t i = 0; i < a.values.size(); ++i)
    ASSERT_NEAR(b.values[i] - a.values[i], std::log(4.0), 1e-5) << i;
}

TEST(FbankTest, DcOffsetIsRemovedPerFrame) {
  const std::vector<float> x = Noise(8000, 0.1f, 17);
  std::vector<float> shifted(x.size());
  for (size_t i = 0; i < x.size(); ++i) shifted[i] = x[i] + 0.25f;
  const Features a = ComputeFbank(x);
  const Features b = ComputeFbank(shifted);
  EXPECT_TRUE(testing::CloseInMaxAbs(b.values, a.values, 1e-3));
}

// Kaldi mel scale: mel = 1127 ln(1 + f / 700), 80 triangles between 20 Hz and
// Nyquist. A pure tone must peak in the bin whose centre is nearest in mel.
TEST(FbankTest, ToneLandsInTheNearestMelBin) {
  auto mel = [](double hz) { return 1127.0 * std::log(1.0 + hz / 700.0); };
  const double delta = (mel(8000.0) - mel(20.0)) / 81.0;
  for (double hz : {250.0, 1000.0, 3000.0, 6000.0}) {
    int expected_bin = 0;
    for (int m = 0; m < 80; ++m) {
      const double centre = mel(20.0) + (m + 1) * delta;
      if (std::fabs(centre - mel(hz)) <
          std::fabs(mel(20.0) + (expected_bin + 1) * delta - mel(hz)))
        expected_bin = m;
    }
    const Features f = ComputeFbank(Sine(4000, hz, 0.5f));
    for (int64_t t = 0; t < f.num_frames; ++t) {
      const float* row = f.Row(t);
      const int peak = static_cast<int>(std::max_element(row, row + 80) - row);
      ASSERT_EQ(peak, expected_bin) << hz << " Hz, frame " << t;
    }
  }
}

// Concurrent calls, including ones that build new kernels (FFTW plans) at
// the same time, give the same bits as a lone call.
TEST(FbankTest, ConcurrentCallsAgreeWithSerial) {
  const std::vector<float> x = Noise(32000, 0.1f, 19);
  std::vector<FbankOptions> variants(4);
  variants[1].num_mel_bins = 40;
  variants[2].frame_length_ms = 32.0f;
  variants[3].sample_rate_hz = 8000;
  constexpr int kThreads = 8;
  std::vector<Features> results(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      try {
        results[i] = ComputeFbank(x, variants[i % variants.size()]);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_EQ(errors[i], "") << "thread " << i;
    const Features serial = ComputeFbank(x, variants[i % variants.size()]);
    EXPECT_EQ(results[i].values, serial.values) << "thread " << i;
    EXPECT_EQ(results[i].num_frames, serial.num_frames);
  }
}

TEST(FbankTest, ThirtySecondsTiming) {
  const std::vector<float> x = Noise(30 * kRateHz, 0.1f, 23);
  ComputeFbank(x);  // builds and caches the kernel
  double best_ms = 1e9;
  for (int run = 0; run < 5; ++run) {
    const auto start = std::chrono::steady_clock::now();
    Features f = ComputeFbank(x);
    SubtractMeanOverTime(f);
    best_ms = std::min(best_ms, std::chrono::duration<double, std::milli>(
                                    std::chrono::steady_clock::now() - start)
                                    .count());
    ASSERT_EQ(f.num_frames, 2998);
  }
  std::cout << "[ measured ] fbank + mean subtraction of 30 s: " << best_ms
            << " ms (best of 5)\n";
  RecordProperty("fbank_30s_ms", std::to_string(best_ms));
}

// ---------------------------------------------------------------------------
// Cross-check against torchaudio.compliance.kaldi.fbank.

constexpr const char* kPython = "/usr/bin/python3";

// Measured need: noise factor < 0.3.
constexpr testing::FbankTolerance kVersusTorchaudio = {1e-4, 4.0};

testing::FbankComparison CompareFbank(std::span<const float> ours,
                                      std::span<const float> reference,
                                      const Features& ours_raw) {
  return testing::CompareFbank(ours, reference, ours_raw, kVersusTorchaudio);
}

void WriteNpy(const fs::path& path, std::span<const float> values) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(values.size()) + ",), }";
  // Magic (6) + version (2) + length (2) + header, padded to 64 with '\n' last.
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t length = static_cast<uint16_t>(header.size());
  const char length_bytes[2] = {static_cast<char>(length & 0xff),
                                static_cast<char>(length >> 8)};
  out.write(length_bytes, 2);
  out << header;
  out.write(reinterpret_cast<const char*>(values.data()),
            static_cast<std::streamsize>(values.size() * sizeof(float)));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

struct TestSignal {
  std::string what;
  std::vector<float> samples;
};

// Speech-like variety: white, low-pass ("brown") and resonant noise, tones on
// a noise floor; quiet (a few LSB), normal, loud and hard-clipped levels.
// Every spectrum keeps a noise floor: in a bin ~100 dB below the frame's
// energy both implementations' float32 FFT noise would dominate the value.
std::vector<TestSignal> MakeSignals() {
  std::mt19937 generator(20240601);
  std::uniform_int_distribution<size_t> length(400, 100000);
  const float levels[] = {1e-4f, 3e-3f, 0.05f, 0.3f, 1.0f, 4.0f};
  std::vector<TestSignal> signals;
  for (int i = 0; i < 20; ++i) {
    const size_t n = i == 0 ? 400 : length(generator);
    const float level = levels[i % std::size(levels)];
    std::vector<float> x = Noise(n, 1.0f, 1000 + i);
    std::string kind;
    switch (i % 4) {
      case 0:
        kind = "white";
        break;
      case 1: {  // one-pole low-pass plus a white floor
        kind = "brown";
        float state = 0.0f;
        for (float& v : x) {
          state = 0.98f * state + 0.2f * v;
          v = state + 0.02f * v;
        }
        break;
      }
      case 2: {  // two resonances, roughly like formants
        kind = "resonant";
        float a1 = 0.0f, a2 = 0.0f;
        for (float& v : x) {
          const float y = v + 1.6f * a1 - 0.81f * a2;
          a2 = a1;
          a1 = y;
          v = 0.1f * y;
        }
        break;
      }
      case 3: {  // tones over noise 30 dB down
        kind = "tones";
        const double f0 = 100.0 + 37.0 * i;
        for (size_t t = 0; t < n; ++t) {
          const double phase = 2.0 * std::numbers::pi * f0 * t / kRateHz;
          x[t] = 0.03f * x[t] + static_cast<float>(0.5 * std::sin(phase) +
                                                   0.3 * std::sin(3.1 * phase));
        }
        break;
      }
    }
    float peak = 0.0f;
    for (float v : x) peak = std::max(peak, std::fabs(v));
    for (float& v : x) v = std::clamp(v / peak * level, -1.0f, 1.0f);
    signals.push_back(
        {kind + " level " + std::to_string(level) + " n " + std::to_string(n),
         std::move(x)});
  }
  return signals;
}

// Runs tests/support/torchaudio_fbank.py once over all signals (importing
// torch takes seconds) and loads its [frames, 80] outputs.
class TorchaudioCrossCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kPython, X_OK) != 0)
      GTEST_SKIP() << kPython << " not found: cannot cross-check torchaudio";
    dir_ = fs::temp_directory_path() /
           ("voxprint-fbank-test-" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }

  // Fills `outputs`, or marks the test skipped (torchaudio missing) or
  // failed; callers check IsSkipped() / HasFailure().
  void RunTorchaudio(const std::vector<TestSignal>& signals,
                     std::vector<testing::NpyArray>& outputs) {
    std::string command = std::string(kPython) +
                          " '" VOXPRINT_SOURCE_DIR
                          "/tests/support/torchaudio_fbank.py'";
    for (size_t i = 0; i < signals.size(); ++i) {
      const fs::path in = dir_ / ("in" + std::to_string(i) + ".npy");
      WriteNpy(in, signals[i].samples);
      command += " '" + in.string() + "' '" + OutPath(i).string() + "'";
    }
    command += " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
      ADD_FAILURE() << "popen failed: " << command;
      return;
    }
    std::string output;
    char buffer[256];
    while (fgets(buffer, sizeof buffer, pipe)) output += buffer;
    const int status = pclose(pipe);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
      GTEST_SKIP() << "torch/torchaudio missing under " << kPython << ": "
                   << output;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ADD_FAILURE() << command << "\n" << output;
      return;
    }
    for (size_t i = 0; i < signals.size(); ++i)
      outputs.push_back(testing::LoadNpy(OutPath(i)));
  }

  fs::path OutPath(size_t i) const {
    return dir_ / ("out" + std::to_string(i) + ".npy");
  }

  fs::path dir_;
};

TEST_F(TorchaudioCrossCheck, RandomSignalsMatchTorchaudio) {
  const std::vector<TestSignal> signals = MakeSignals();
  std::vector<testing::NpyArray> expected;
  RunTorchaudio(signals, expected);
  if (IsSkipped() || HasFailure()) return;

  double max_raw = 0.0, max_normalised = 0.0, max_score = 0.0;
  for (size_t i = 0; i < signals.size(); ++i) {
    SCOPED_TRACE(signals[i].what);
    const Features ours_raw = ComputeFbank(signals[i].samples);
    ASSERT_EQ(expected[i].shape.size(), 2u);
    ASSERT_EQ(ours_raw.num_frames, expected[i].shape[0]);
    ASSERT_EQ(ours_raw.num_bins, expected[i].shape[1]);
    const testing::FbankComparison raw =
        CompareFbank(ours_raw.values, expected[i].values, ours_raw);
    EXPECT_TRUE(raw.result) << "before mean subtraction";

    // Again after mean subtraction, both sides by SubtractMeanOverTime.
    Features theirs;
    theirs.values = expected[i].values;
    theirs.num_frames = expected[i].shape[0];
    theirs.num_bins = static_cast<int>(expected[i].shape[1]);
    SubtractMeanOverTime(theirs);
    Features ours = ours_raw;
    SubtractMeanOverTime(ours);
    const testing::FbankComparison normalised =
        CompareFbank(ours.values, theirs.values, ours_raw);
    EXPECT_TRUE(normalised.result) << "after mean subtraction";

    max_raw = std::max(max_raw, raw.max_abs);
    max_normalised = std::max(max_normalised, normalised.max_abs);
    max_score = std::max({max_score, raw.max_score, normalised.max_score});
  }
  std::cout << "[ measured ] vs torchaudio on " << signals.size()
            << " signals: max|diff| " << max_raw << " raw, " << max_normalised
            << " after mean subtraction; worst |diff|/allowed " << max_score
            << "\n";
  RecordProperty("torchaudio_max_abs", std::to_string(max_raw));
}

// The comparison above is not toothless: small mistakes in the recipe, each
// plausible in a port, must fail it.
TEST_F(TorchaudioCrossCheck, WrongDetailsAreDetected) {
  std::vector<TestSignal> signals = MakeSignals();
  signals.resize(4);
  std::vector<testing::NpyArray> expected;
  RunTorchaudio(signals, expected);
  if (IsSkipped() || HasFailure()) return;

  std::vector<std::pair<std::string, FbankOptions>> wrong(3);
  wrong[0].first = "preemphasis 0.98";
  wrong[0].second.preemphasis = 0.98f;
  wrong[1].first = "low_freq_hz 21";
  wrong[1].second.low_freq_hz = 21.0f;
  wrong[2].first = "no DC removal";
  wrong[2].second.remove_dc_offset = false;
  for (const auto& [what, options] : wrong) {
    bool detected = false;
    for (size_t i = 0; i < signals.size(); ++i) {
      const Features ours = ComputeFbank(signals[i].samples, options);
      if (!CompareFbank(ours.values, expected[i].values, ours).result)
        detected = true;
    }
    EXPECT_TRUE(detected) << what << " passed the torchaudio comparison";
  }
}

}  // namespace
}  // namespace voxprint
