// Google Benchmark timings of voxprint's stages on the reference kit:
// decoding, resampling 44.1 kHz -> 16 kHz, fbank of 30 s, and the network
// alone through Extractor::EmbedFeatures at the two shapes the pipeline uses
// (whole 30 s: B=1 T=2998; sliding 3 s / 1 s over 30 s: B=28 T=298), each
// with 1 and 2 threads. The kit is $VOXPRINT_REFERENCE_DIR or the directory
// configured at build time; the model is $VOXPRINT_BENCH_MODEL or the kit's
// pytorch_model.bin. Counters: audio_s_per_s (seconds of audio per second of
// compute, i.e. 1 / RTF) or windows_per_s.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/cpu-backend.h"
#include "bench-support.h"
#include "model/model-file.h"
#include "voxprint/audio.h"
#include "voxprint/extractor.h"
#include "voxprint/features.h"
#include "voxprint/vad.h"

namespace {

namespace fs = std::filesystem;

fs::path Kit() { return voxprint::bench::DefaultKitDir(); }

std::string AudioPath(const std::string& name) {
  return (Kit() / "audio" / name).string();
}

std::string ModelPath() {
  if (const char* model = std::getenv("VOXPRINT_BENCH_MODEL");
      model && *model) {
    return model;
  }
  return (Kit() / "models" / "pytorch_model.bin").string();
}

// One Extractor per thread count, made on first use (not timed).
const voxprint::Extractor& ExtractorWithThreads(int threads) {
  static std::map<int, std::unique_ptr<voxprint::Extractor>> extractors;
  auto& extractor = extractors[threads];
  if (!extractor) {
    voxprint::ExtractorOptions options;
    options.model_path = ModelPath();
    options.device = "cpu";
    options.backend.num_threads = threads;
    options.max_parallel_runs = 1;
    extractor = std::make_unique<voxprint::Extractor>(options);
  }
  return *extractor;
}

const voxprint::bench::NpyArray& SampleFbank() {
  static const auto fbank =
      voxprint::bench::LoadNpy(Kit() / "expected" / "sample_wav.fbank.npy");
  return fbank;
}

void SetAudioRate(benchmark::State& state, double audio_s) {
  state.counters["audio_s_per_s"] =
      benchmark::Counter(audio_s * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

void BM_Decode(benchmark::State& state, const std::string& name) {
  const std::string path = AudioPath(name);
  double audio_s = 0.0;
  for (auto _ : state) {
    auto decoded = voxprint::DecodeAudioFile(path);
    audio_s = decoded.info.DurationSeconds();
    benchmark::DoNotOptimize(decoded.mono.samples.data());
  }
  SetAudioRate(state, audio_s);
}
BENCHMARK_CAPTURE(BM_Decode, sample_wav, std::string("sample.wav"))
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Decode, sample_mp3, std::string("sample.mp3"))
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_Resample44kTo16k(benchmark::State& state) {
  const auto decoded = voxprint::DecodeAudioFile(AudioPath("stereo_44k.wav"));
  const auto& samples = decoded.mono.samples;
  for (auto _ : state) {
    auto out = voxprint::Resample(samples, decoded.mono.sample_rate_hz,
                                  voxprint::kModelSampleRateHz);
    benchmark::DoNotOptimize(out.data());
  }
  SetAudioRate(state, decoded.info.DurationSeconds());
}
BENCHMARK(BM_Resample44kTo16k)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Fbank30s(benchmark::State& state) {
  const auto audio = voxprint::LoadAudio16k(AudioPath("sample.wav"));
  for (auto _ : state) {
    auto features = voxprint::ComputeFbank(audio.samples);
    voxprint::SubtractMeanOverTime(features);
    benchmark::DoNotOptimize(features.values.data());
  }
  SetAudioRate(state, static_cast<double>(audio.samples.size()) /
                          voxprint::kModelSampleRateHz);
}
BENCHMARK(BM_Fbank30s)->Unit(benchmark::kMillisecond)->UseRealTime();

// Network, whole 30 s: [1, 2998, 80]. Arg: threads.
void BM_NetworkWhole30s(benchmark::State& state) {
  const auto& extractor =
      ExtractorWithThreads(static_cast<int>(state.range(0)));
  const auto& fbank = SampleFbank();
  const int64_t frames = fbank.shape[0];
  benchmark::DoNotOptimize(extractor.EmbedFeatures(fbank.values, 1, frames));
  for (auto _ : state) {
    auto embedding = extractor.EmbedFeatures(fbank.values, 1, frames);
    benchmark::DoNotOptimize(embedding.data());
  }
  SetAudioRate(state, static_cast<double>(frames) / 100.0);
}
BENCHMARK(BM_NetworkWhole30s)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Network, sliding 3 s every 1 s over 30 s: [28, 298, 80], each window
// normalised by its own mean as the pipeline does. Arg: threads.
void BM_NetworkSliding3s1s(benchmark::State& state) {
  constexpr int kWindows = 28;
  constexpr int64_t kFrames = 298;
  constexpr int64_t kStepFrames = 100;
  const auto& extractor =
      ExtractorWithThreads(static_cast<int>(state.range(0)));
  const auto& fbank = SampleFbank();
  const int bins = static_cast<int>(fbank.shape[1]);
  std::vector<float> batch(kWindows * kFrames * bins);
  for (int w = 0; w < kWindows; ++w) {
    float* window = batch.data() + w * kFrames * bins;
    const float* source = fbank.values.data() + w * kStepFrames * bins;
    for (int b = 0; b < bins; ++b) {
      double sum = 0.0;
      for (int64_t t = 0; t < kFrames; ++t) sum += source[t * bins + b];
      const float mean = static_cast<float>(sum / kFrames);
      for (int64_t t = 0; t < kFrames; ++t) {
        window[t * bins + b] = source[t * bins + b] - mean;
      }
    }
  }
  benchmark::DoNotOptimize(extractor.EmbedFeatures(batch, kWindows, kFrames));
  for (auto _ : state) {
    auto embeddings = extractor.EmbedFeatures(batch, kWindows, kFrames);
    benchmark::DoNotOptimize(embeddings.data());
  }
  state.counters["windows_per_s"] = benchmark::Counter(
      static_cast<double>(kWindows) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_NetworkSliding3s1s)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The network alone at one input shape (batch x frames, untiled), with one
// convolution algorithm, 1 thread: the per-frame cost against the shape that
// the tiling and batching choices rest on. Args: batch, frames, kernels
// (0: the automatic rule, 1: direct everywhere, 2: Winograd F(2x2) where
// oneDNN offers it, 3: Winograd F(4x4)). Counter: seconds per second of
// audio (100 frames).
void BM_NetworkShape(benchmark::State& state) {
  namespace cpu = voxprint::backends::cpu;
  static const auto weights =
      voxprint::model::LoadModelFile(ModelPath(), {.checksum = false}).weights;
  const int batch = static_cast<int>(state.range(0));
  const int64_t frames = state.range(1);
  cpu::CpuTuning tuning;
  tuning.algorithm = state.range(2) == 1 ? cpu::ConvAlgorithm::kDirect
                                         : cpu::ConvAlgorithm::kAuto;
  if (state.range(2) == 2)
    tuning.winograd_kernel = cpu::WinogradKernelChoice::kF2x2;
  if (state.range(2) == 3)
    tuning.winograd_kernel = cpu::WinogradKernelChoice::kF4x4;
  tuning.max_untiled_frames = 1 << 20;
  tuning.max_batch_frames = 1 << 20;
  voxprint::BackendOptions options;
  options.num_threads = 1;
  auto session =
      cpu::CreateCpuBackend(options, tuning)->Prepare(weights)->NewSession();
  const auto& fbank = SampleFbank();
  const int bins = static_cast<int>(fbank.shape[1]);
  std::vector<float> input(static_cast<size_t>(batch) * frames * bins);
  for (size_t i = 0; i < input.size(); ++i)
    input[i] = fbank.values[i % fbank.values.size()];
  benchmark::DoNotOptimize(session->Run(input, batch, frames));
  for (auto _ : state)
    benchmark::DoNotOptimize(session->Run(input, batch, frames).data());
  state.counters["s_per_audio_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * batch * frames / 100.0,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_NetworkShape)
    ->ArgNames({"batch", "frames", "kernels"})
    ->ArgsProduct({{1}, {300, 1000, 3000, 6000}, {1, 2, 3}})
    ->ArgsProduct({{1},
                   {100, 200, 300, 500, 800, 1300, 2100, 3000, 4096, 6000},
                   {0}})
    ->ArgsProduct({{1}, {2048, 2560, 3072, 3584, 4000, 4096, 4608, 5120}, {3}})
    ->Args({28, 298, 0})
    ->Args({4, 750, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Silero VAD v5's probabilities for 60 s of the kit's speech (dev00.wav then
// trn01.wav; the model is $VOXPRINT_VAD_MODEL or the npm install that
// FindVadModel finds). Arg: threads.
void BM_SileroVad60s(benchmark::State& state) {
  const voxprint::VoiceActivityDetector detector(
      voxprint::FindVadModel(), static_cast<int>(state.range(0)));
  static const std::vector<float> audio = [] {
    std::vector<float> samples =
        voxprint::LoadAudio16k(AudioPath("dev00.wav")).samples;
    const auto second = voxprint::LoadAudio16k(AudioPath("trn01.wav"));
    samples.insert(samples.end(), second.samples.begin(), second.samples.end());
    return samples;
  }();
  for (auto _ : state)
    benchmark::DoNotOptimize(detector.Probabilities(audio).data());
  SetAudioRate(
      state, static_cast<double>(audio.size()) / voxprint::kModelSampleRateHz);
}
BENCHMARK(BM_SileroVad60s)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
