// The Silero VAD network's ways of computing the same numbers: both STFTs
// (FFTW's FFT and the product with the basis) stay within 1e-4 of ONNX Runtime
// (tests/data/silero-vad-dev00.json), and threads, blocks and streamed
// pieces never change a single value.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/reference-kit.h"
#include "support/vad-model.h"
#include "vad/silero-network.h"
#include "vad/silero-weights.h"
#include "voxprint/audio.h"
#include "voxprint/error.h"
#include "voxprint/vad.h"

namespace voxprint::vad {
namespace {

namespace fs = std::filesystem;

std::string ModelPath() { return testing::VadModelPathOrEmpty(); }

class SileroNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VOXPRINT_REQUIRE_REFERENCE_KIT();
    VOXPRINT_REQUIRE_VAD_MODEL();
    if (!weights_) {
      const std::vector<uint8_t> bytes = testing::ReadFileBytes(ModelPath());
      weights_ = new SileroWeights(ReadSileroWeights(bytes, ModelPath()));
      audio_ = new Audio16k(
          LoadAudio16k(testing::ReferenceDir() / "audio" / "dev00.wav"));
      std::ifstream in(fs::path(VOXPRINT_SOURCE_DIR) / "tests" / "data" /
                       "silero-vad-dev00.json");
      reference_ = new std::vector<float>(nlohmann::json::parse(in)
                                              .at("probabilities")
                                              .get<std::vector<float>>());
    }
  }
  static std::span<const float> Samples() { return audio_->samples; }

  // Shared by the tests (loaded once, ~0.2 s).
  static const SileroWeights* weights_;
  static const Audio16k* audio_;
  static const std::vector<float>* reference_;
};

const SileroWeights* SileroNetworkTest::weights_ = nullptr;
const Audio16k* SileroNetworkTest::audio_ = nullptr;
const std::vector<float>* SileroNetworkTest::reference_ = nullptr;

TEST_F(SileroNetworkTest, BothStftsMatchOnnxRuntime) {
  for (const bool matrix_stft : {false, true}) {
    SCOPED_TRACE(matrix_stft ? "matrix STFT" : "FFT");
    const SileroNetwork network(*weights_, {matrix_stft});
    // Silero VAD v5's basis is a windowed DFT: the FFT is used.
    EXPECT_EQ(network.UsesFft(), !matrix_stft);
    const std::vector<float> probabilities = network.Run(Samples(), {});
    EXPECT_TRUE(testing::CloseInMaxAbs(probabilities, *reference_, 1e-4));
    double worst = 0.0;
    for (size_t c = 0; c < probabilities.size(); ++c)
      worst = std::max(worst, std::abs(static_cast<double>(probabilities[c]) -
                                       (*reference_)[c]));
    RecordProperty(
        std::string(matrix_stft ? "matrix" : "fft") + "_max_abs_diff",
        std::to_string(worst));
  }
}

TEST_F(SileroNetworkTest, ABasisThatIsNotADftIsMultipliedOut) {
  // Another window (the basis scaled per sample) keeps being a windowed DFT;
  // a basis with one bin's row swapped for another's is not one.
  SileroWeights swapped = *weights_;
  std::swap_ranges(swapped.stft_basis.begin() + 5 * kStftFilterLength,
                   swapped.stft_basis.begin() + 6 * kStftFilterLength,
                   swapped.stft_basis.begin() + 7 * kStftFilterLength);
  const SileroNetwork matrix(swapped);
  EXPECT_FALSE(matrix.UsesFft());
  SileroWeights rewindowed = *weights_;
  for (size_t i = 0; i < rewindowed.stft_basis.size(); ++i)
    rewindowed.stft_basis[i] *= 0.5f;
  EXPECT_TRUE(SileroNetwork(rewindowed).UsesFft());
  // The matrix path computes what the swapped basis says: bins 5 and 7
  // trade places, so the probabilities move.
  const std::span<const float> ten_seconds = Samples().first(160000);
  const std::vector<float> base = SileroNetwork(*weights_).Run(ten_seconds, {});
  const std::vector<float> moved = matrix.Run(ten_seconds, {});
  ASSERT_EQ(base.size(), moved.size());
  EXPECT_NE(base, moved);
}

TEST_F(SileroNetworkTest, ThreadsGiveTheSameValues) {
  const SileroNetwork network(*weights_);
  const std::vector<float> one = network.Run(Samples(), {}, 1);
  for (const int threads : {2, 3, 8})
    EXPECT_EQ(network.Run(Samples(), {}, threads), one) << threads;
  // Shorter than a block, and a block and a bit: the helpers have little or
  // nothing to do.
  for (const size_t samples :
       {size_t{100}, size_t{512} * (SileroNetwork::kBlockChunks + 1) + 7}) {
    const std::span<const float> part = Samples().first(samples);
    EXPECT_EQ(network.Run(part, {}, 2), network.Run(part, {}, 1)) << samples;
  }
}

TEST_F(SileroNetworkTest, StreamedPiecesGiveRunsValues) {
  const SileroNetwork network(*weights_);
  const std::vector<float> whole = network.Run(Samples(), {});
  for (const int threads : {1, 2}) {
    SileroNetwork::Stream stream(network, threads);
    std::vector<float> out;
    // Odd small pieces, an empty one, then one larger than a stream batch.
    const std::span<const float> all = Samples();
    size_t at = 0;
    for (size_t size = 1; at < all.size() / 2; size = size * 7 % 5000 + 1) {
      stream.Push(all.subspan(at, size), &out);
      at += size;
    }
    stream.Push({}, &out);
    stream.Push(all.subspan(at), &out);
    const size_t before_finish = out.size();
    EXPECT_GE(before_finish,
              static_cast<size_t>(SileroNetwork::Stream::kStreamBatchChunks));
    stream.Finish(&out);
    EXPECT_GT(out.size(), before_finish);
    EXPECT_EQ(out, whole) << threads << " threads";
    // Finishing again adds nothing.
    stream.Finish(&out);
    EXPECT_EQ(out.size(), whole.size());
  }
}

TEST_F(SileroNetworkTest, CancellingAThreadedRunStopsIt) {
  const SileroNetwork network(*weights_);
  const CancelToken cancel = CancelToken::Create();
  std::vector<float> long_audio(16000 * 600, 0.0f);  // 10 min of silence
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    cancel.Cancel();
  });
  try {
    network.Run(long_audio, cancel, 2);
    ADD_FAILURE() << "expected kCancelled";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kCancelled);
  }
  canceller.join();
}

TEST(VoiceActivityDetectorThreads, NegativeIsRefusedZeroIsOnePerCore) {
  try {
    VoiceActivityDetector detector("/nonexistent/silero_vad_v5.onnx", -1);
    FAIL() << "-1 threads accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(error.what()).find("num_threads"), std::string::npos)
        << error.what();
  }
  VOXPRINT_REQUIRE_VAD_MODEL();
  const VoiceActivityDetector per_core(ModelPath(), 0);
  EXPECT_EQ(
      per_core.num_threads(),
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  EXPECT_EQ(VoiceActivityDetector(ModelPath(), 3).num_threads(), 3);
}

}  // namespace
}  // namespace voxprint::vad
