// Google Benchmark: `Diarizer::DiarizeFile` on long files made from the kit,
// 2 threads, VAD -> windows -> embeddings -> clustering -> turns. Two inputs,
// each written once as a 16-bit mono 16 kHz WAV in the temp directory:
// - kit audio: the kit's dev00, trn01, tst00 and sample.wav (2 minutes, about
//   half of it speech by voxprint's VAD) repeated to the length asked for;
// - continuous speech: only the speech segments voxprint's VAD finds in those
//   four files (64 s), concatenated and repeated: the worst case, a window
//   every 0.75 s of the file.
// Rows:
// - BM_DiarizeKitAudio/minutes:10 and 60;
// - BM_DiarizeContinuousSpeech/minutes:10 and 60 (the target: 1 hour in
//   <= 60 s), and 120 only with --with-2h (minutes of compute; run it alone,
//   --with-2h --benchmark_filter=minutes:120, so that peak_rss_mib is the
//   2-hour file's: the counter is the process's peak so far);
// - BM_DiarizeStages/minutes:10 and 60: the Diarizer's steps one by one
//   through the public API on the continuous speech decoded in memory, each
//   timed: vad_s (Silero on the samples), fbank_s, network_s (batches of 32
//   windows, as the Diarizer), clustering_s (ClusterEmbeddings, agglomerative
//   as the default), where the time of a diarization goes.
// Counters: rtf (compute / audio), windows, speech_s (the VAD's speech),
// peak_rss_mib. The kit is $VOXPRINT_REFERENCE_DIR or the directory
// configured at build time; the VAD model as `voxprint diarize` finds it.
// bench/diarize_vs_pytorch.py makes the same continuous-speech file (byte for
// byte) and compares `voxprint diarize` with WeSpeaker's pipeline in PyTorch.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench-support.h"
#include "voxprint/audio.h"
#include "voxprint/diarizer.h"
#include "voxprint/extractor.h"
#include "voxprint/features.h"
#include "voxprint/vad.h"

namespace {

namespace fs = std::filesystem;

constexpr int kThreads = 2;
constexpr const char* kKitFiles[] = {"dev00.wav", "trn01.wav", "tst00.wav",
                                     "sample.wav"};

const voxprint::VoiceActivityDetector& Vad() {
  static const voxprint::VoiceActivityDetector vad(voxprint::FindVadModel());
  return vad;
}

// The kit's four files, one after another, at 16 kHz.
std::vector<float> KitAudio() {
  std::vector<float> samples;
  for (const char* name : kKitFiles) {
    const voxprint::Audio16k audio = voxprint::LoadAudio16k(
        (voxprint::bench::DefaultKitDir() / "audio" / name).string());
    samples.insert(samples.end(), audio.samples.begin(), audio.samples.end());
  }
  return samples;
}

// Only the speech voxprint's VAD (default options) finds in each kit file,
// in the same order.
std::vector<float> KitSpeech() {
  std::vector<float> speech;
  for (const char* name : kKitFiles) {
    const voxprint::Audio16k audio = voxprint::LoadAudio16k(
        (voxprint::bench::DefaultKitDir() / "audio" / name).string());
    for (const voxprint::SpeechSegment& segment :
         Vad().SpeechSegments(audio.samples))
      speech.insert(speech.end(), audio.samples.begin() + segment.start_sample,
                    audio.samples.begin() + segment.end_sample);
  }
  return speech;
}

// `source` repeated to `minutes` as a mono 16 kHz 16-bit WAV: samples
// rounded as round(x * 32768) (half to even) and clipped, as numpy writes
// them in bench/make_audio.py, so the kit's 16-bit audio stays exact.
void WriteRepeatedWav(const fs::path& path, const std::vector<float>& source,
                      int minutes) {
  if (source.empty())
    throw std::runtime_error("no audio to repeat into " + path.string());
  const int64_t total = int64_t{minutes} * 60 * voxprint::kModelSampleRateHz;
  const fs::path partial = path.string() + ".partial";
  {
    std::ofstream out(partial, std::ios::binary);
    auto put32 = [&](uint32_t v) { out.write(reinterpret_cast<char*>(&v), 4); };
    auto put16 = [&](uint16_t v) { out.write(reinterpret_cast<char*>(&v), 2); };
    out.write("RIFF", 4);
    put32(static_cast<uint32_t>(36 + total * 2));
    out.write("WAVEfmt ", 8);
    put32(16);
    put16(1);  // PCM
    put16(1);  // mono
    put32(16000);
    put32(32000);
    put16(2);
    put16(16);
    out.write("data", 4);
    put32(static_cast<uint32_t>(total * 2));
    std::vector<int16_t> block;
    for (int64_t i = 0; i < total; ++i) {
      const float scaled = std::nearbyint(source[i % source.size()] * 32768.0f);
      block.push_back(
          static_cast<int16_t>(std::clamp(scaled, -32768.0f, 32767.0f)));
      if (block.size() == 65536 || i + 1 == total) {
        out.write(reinterpret_cast<const char*>(block.data()),
                  static_cast<std::streamsize>(block.size() * 2));
        block.clear();
      }
    }
    if (!out) throw std::runtime_error("cannot write " + partial.string());
  }
  fs::rename(partial, path);
}

enum class Input { kKitAudio, kContinuousSpeech };

// The input file, made on first use (and kept in the temp directory).
fs::path InputFile(Input input, int minutes) {
  const bool speech = input == Input::kContinuousSpeech;
  const fs::path path =
      fs::temp_directory_path() /
      ("voxprint-diarize-bench-" + std::string(speech ? "speech-" : "kit-") +
       std::to_string(minutes) + "min.wav");
  if (!fs::exists(path))
    WriteRepeatedWav(path, speech ? KitSpeech() : KitAudio(), minutes);
  return path;
}

std::unique_ptr<voxprint::Extractor> MakeExtractor() {
  voxprint::ExtractorOptions options;
  options.model_path =
      (voxprint::bench::DefaultKitDir() / "models" / "pytorch_model.bin")
          .string();
  options.device = "cpu";
  options.backend.num_threads = kThreads;
  options.max_parallel_runs = 1;
  return std::make_unique<voxprint::Extractor>(options);
}

void DiarizeFileRow(benchmark::State& state, Input input) {
  const int minutes = static_cast<int>(state.range(0));
  const fs::path file = InputFile(input, minutes);
  const std::unique_ptr<voxprint::Extractor> extractor = MakeExtractor();
  const voxprint::Diarizer diarizer(*extractor, Vad());
  voxprint::Diarization result;
  double seconds = 0.0;
  for (auto _ : state) {
    const int64_t start = voxprint::bench::NowNs();
    result = diarizer.DiarizeFile(file.string());
    seconds += voxprint::bench::SecondsSince(start);
    benchmark::DoNotOptimize(result.turns.data());
  }
  state.counters["rtf"] =
      seconds / static_cast<double>(state.iterations()) / (minutes * 60.0);
  state.counters["windows"] = static_cast<double>(result.num_windows);
  state.counters["speech_s"] = result.speech_s;
  state.counters["speakers"] = static_cast<double>(result.speakers.size());
  state.counters["peak_rss_mib"] = voxprint::bench::PeakRssMib();
}

void BM_DiarizeKitAudio(benchmark::State& state) {
  DiarizeFileRow(state, Input::kKitAudio);
}
BENCHMARK(BM_DiarizeKitAudio)
    ->ArgName("minutes")
    ->Arg(10)
    ->Arg(60)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

void BM_DiarizeContinuousSpeech(benchmark::State& state) {
  DiarizeFileRow(state, Input::kContinuousSpeech);
}
BENCHMARK(BM_DiarizeContinuousSpeech)
    ->ArgName("minutes")
    ->Arg(10)
    ->Arg(60)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

// The Diarizer's steps one at a time on samples in memory (the file decoded
// before the clock starts), with the Diarizer's defaults.
void BM_DiarizeStages(benchmark::State& state) {
  const int minutes = static_cast<int>(state.range(0));
  const voxprint::Audio16k audio = voxprint::LoadAudio16k(
      InputFile(Input::kContinuousSpeech, minutes).string());
  const std::unique_ptr<voxprint::Extractor> extractor = MakeExtractor();
  const voxprint::DiarizeRequest defaults;
  const voxprint::FbankOptions& fbank = extractor->Fbank();
  const int dim = extractor->EmbeddingDim();
  double vad_s = 0.0, fbank_s = 0.0, network_s = 0.0, clustering_s = 0.0,
         speech_s = 0.0;
  size_t windows_count = 0;
  int speakers = 0;
  for (auto _ : state) {
    int64_t start = voxprint::bench::NowNs();
    const std::vector<voxprint::SpeechSegment> speech =
        Vad().SpeechSegments(audio.samples, defaults.vad);
    vad_s += voxprint::bench::SecondsSince(start);
    speech_s = 0.0;
    for (const voxprint::SpeechSegment& segment : speech)
      speech_s += segment.EndSeconds() - segment.StartSeconds();

    const std::vector<voxprint::DiarizationWindow> windows =
        voxprint::PlanDiarizationWindows(
            speech, static_cast<int64_t>(audio.samples.size()),
            defaults.windows);
    windows_count = windows.size();
    if (windows.empty()) {
      state.SkipWithError("no speech found in the continuous-speech file");
      return;
    }
    const int64_t frames = fbank.NumFrames(windows.front().end_sample -
                                           windows.front().start_sample);
    std::vector<float> embeddings;
    std::vector<float> batch;
    const size_t per_batch = static_cast<size_t>(defaults.batch_windows);
    for (size_t first = 0; first < windows.size(); first += per_batch) {
      const size_t count = std::min(per_batch, windows.size() - first);
      start = voxprint::bench::NowNs();
      batch.clear();
      for (size_t w = first; w < first + count; ++w) {
        voxprint::Features features = voxprint::ComputeFbank(
            std::span<const float>(audio.samples)
                .subspan(windows[w].start_sample,
                         windows[w].end_sample - windows[w].start_sample),
            fbank);
        voxprint::SubtractMeanOverTime(features);
        batch.insert(batch.end(), features.values.begin(),
                     features.values.end());
      }
      fbank_s += voxprint::bench::SecondsSince(start);
      start = voxprint::bench::NowNs();
      const std::vector<float> out =
          extractor->EmbedFeatures(batch, static_cast<int>(count), frames);
      network_s += voxprint::bench::SecondsSince(start);
      embeddings.insert(embeddings.end(), out.begin(), out.end());
    }

    start = voxprint::bench::NowNs();
    const std::vector<int> labels = voxprint::ClusterEmbeddings(
        embeddings, static_cast<int64_t>(windows.size()), dim,
        defaults.clustering);
    clustering_s += voxprint::bench::SecondsSince(start);
    speakers = *std::max_element(labels.begin(), labels.end()) + 1;
    benchmark::DoNotOptimize(
        voxprint::TurnsFromWindowLabels(windows, labels).data());
  }
  const double runs = static_cast<double>(state.iterations());
  const double total_s = (vad_s + fbank_s + network_s + clustering_s) / runs;
  state.counters["rtf"] = total_s / (minutes * 60.0);
  state.counters["windows"] = static_cast<double>(windows_count);
  state.counters["speech_s"] = speech_s;
  state.counters["speakers"] = speakers;
  state.counters["vad_s"] = vad_s / runs;
  state.counters["fbank_s"] = fbank_s / runs;
  state.counters["network_s"] = network_s / runs;
  state.counters["clustering_s"] = clustering_s / runs;
  state.counters["ms_per_window"] =
      1e3 * (fbank_s + network_s) / runs / static_cast<double>(windows_count);
  state.counters["peak_rss_mib"] = voxprint::bench::PeakRssMib();
}
BENCHMARK(BM_DiarizeStages)
    ->ArgName("minutes")
    ->Arg(10)
    ->Arg(60)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  // --with-2h (ours, removed before Google Benchmark reads the flags): the
  // 2-hour continuous-speech row, bounded memory by streaming.
  std::vector<char*> args;
  bool with_2h = false;
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && std::strcmp(argv[i], "--with-2h") == 0)
      with_2h = true;
    else
      args.push_back(argv[i]);
  }
  if (with_2h)
    benchmark::RegisterBenchmark("BM_DiarizeContinuousSpeech",
                                 BM_DiarizeContinuousSpeech)
        ->ArgName("minutes")
        ->Arg(120)
        ->Iterations(1)
        ->Unit(benchmark::kSecond)
        ->UseRealTime();
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
