// Google Benchmark: `Diarizer::DiarizeFile` on a long file made of the kit's
// speech (dev00, trn01, tst00 and sample.wav, 2 minutes, repeated to the
// length asked for, written once as a 16-bit WAV in the temp directory), on
// 2 threads, VAD -> windows -> embeddings -> clustering -> turns. Rows:
// 10 minutes and 1 hour (targets: 1 hour in <= 60 s). Counters: rtf
// (compute / audio), windows, peak_rss_mib (the process's peak so far).
// The kit is $VOXPRINT_REFERENCE_DIR or the directory configured at build
// time; the VAD model as `voxprint diarize` finds it.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bench-support.h"
#include "voxprint/audio.h"
#include "voxprint/diarizer.h"
#include "voxprint/extractor.h"
#include "voxprint/vad.h"

namespace {

namespace fs = std::filesystem;

// A mono 16 kHz 16-bit WAV of the kit's speech, `minutes` long.
fs::path LongSpeechFile(int minutes) {
  const fs::path path =
      fs::temp_directory_path() /
      ("voxprint-diarize-bench-" + std::to_string(minutes) + "min.wav");
  if (fs::exists(path)) return path;
  std::vector<float> speech;
  for (const char* name :
       {"dev00.wav", "trn01.wav", "tst00.wav", "sample.wav"}) {
    const voxprint::Audio16k audio = voxprint::LoadAudio16k(
        (voxprint::bench::DefaultKitDir() / "audio" / name).string());
    speech.insert(speech.end(), audio.samples.begin(), audio.samples.end());
  }
  const int64_t total = int64_t{minutes} * 60 * 16000;
  std::ofstream out(path, std::ios::binary);
  auto put32 = [&](uint32_t v) { out.write(reinterpret_cast<char*>(&v), 4); };
  auto put16 = [&](uint16_t v) { out.write(reinterpret_cast<char*>(&v), 2); };
  out.write("RIFF", 4);
  put32(static_cast<uint32_t>(36 + total * 2));
  out.write("WAVEfmt ", 8);
  put32(16);
  put16(1);
  put16(1);
  put32(16000);
  put32(32000);
  put16(2);
  put16(16);
  out.write("data", 4);
  put32(static_cast<uint32_t>(total * 2));
  for (int64_t i = 0; i < total; ++i) {
    const float x = std::clamp(speech[i % speech.size()], -1.0f, 1.0f);
    put16(static_cast<uint16_t>(static_cast<int16_t>(x * 32767.0f)));
  }
  return path;
}

void BM_DiarizeLongFile(benchmark::State& state) {
  const int minutes = static_cast<int>(state.range(0));
  const fs::path file = LongSpeechFile(minutes);
  voxprint::ExtractorOptions options;
  options.model_path =
      (voxprint::bench::DefaultKitDir() / "models" / "pytorch_model.bin")
          .string();
  options.device = "cpu";
  options.backend.num_threads = 2;
  options.max_parallel_runs = 1;
  const voxprint::Extractor extractor(options);
  const voxprint::VoiceActivityDetector vad(voxprint::FindVadModel());
  const voxprint::Diarizer diarizer(extractor, vad);
  int64_t windows = 0;
  double seconds = 0.0;
  for (auto _ : state) {
    const int64_t start = voxprint::bench::NowNs();
    const voxprint::Diarization result = diarizer.DiarizeFile(file.string());
    seconds += voxprint::bench::SecondsSince(start);
    windows = result.num_windows;
    benchmark::DoNotOptimize(result.turns.data());
  }
  state.counters["rtf"] =
      seconds / static_cast<double>(state.iterations()) / (minutes * 60.0);
  state.counters["windows"] = static_cast<double>(windows);
  state.counters["peak_rss_mib"] = voxprint::bench::PeakRssMib();
}
BENCHMARK(BM_DiarizeLongFile)
    ->ArgName("minutes")
    ->Arg(10)
    ->Arg(60)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
