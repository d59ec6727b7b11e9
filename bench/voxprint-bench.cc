// End-to-end timings of voxprint through Extractor, as JSON on stdout, with
// the same contract as the peers in bench/peers/ (see bench/run.py):
//
//   voxprint-bench --long 10min.wav [--kit DIR] [--model FILE]
//                  [--threads 1,2] [--device cpu] [--quick]
//
// Before timing, it checks the whole embedding of the kit's sample.wav
// against the expected one (relative L2 <= 1e-4) and exits 1 otherwise.
// Then, per thread count (ExtractorOptions.backend.num_threads): model load
// (Extractor construction), whole 30 s and whole 10 min from the file, and
// sliding 3 s / 1 s windows on the 30 s file.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench-support.h"
#include "voxprint/audio.h"
#include "voxprint/error.h"
#include "voxprint/extractor.h"
#include "voxprint/features.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using voxprint::bench::TimeRuns;
using voxprint::bench::Timing;

constexpr double kCheckTolerance = 1e-4;

json ToJson(const Timing& timing) {
  return {{"median_s", timing.median_s},
          {"min_s", timing.min_s},
          {"reps", timing.reps}};
}

std::vector<float> Flatten(const voxprint::EmbeddingResult& result) {
  std::vector<float> all;
  for (const auto& window : result.windows) {
    all.insert(all.end(), window.embedding.begin(), window.embedding.end());
  }
  return all;
}

json Accuracy(const voxprint::Extractor& extractor, const fs::path& kit) {
  const fs::path audio = kit / "audio" / "sample.wav";
  const fs::path expected = kit / "expected";
  voxprint::Features features =
      voxprint::ComputeFbank(voxprint::LoadAudio16k(audio.string()).samples);
  voxprint::SubtractMeanOverTime(features);
  voxprint::EmbedRequest sliding;
  sliding.mode = voxprint::WindowMode::kSliding;
  return {
      {"fbank_rel_l2",
       voxprint::bench::RelativeL2(
           features.values,
           voxprint::bench::LoadNpy(expected / "sample_wav.fbank.npy").values)},
      {"whole_rel_l2",
       voxprint::bench::RelativeL2(
           extractor.EmbedFile(audio.string()).embedding,
           voxprint::bench::LoadNpy(expected / "sample_wav.whole.npy").values)},
      {"sliding_3_1_rel_l2",
       voxprint::bench::RelativeL2(
           Flatten(extractor.EmbedFile(audio.string(), sliding)),
           voxprint::bench::LoadNpy(expected / "sample_wav.sliding_3.0_1.0.npy")
               .values)},
  };
}

int Run(int argc, char** argv) {
  std::string kit = voxprint::bench::DefaultKitDir().string();
  std::string model;
  std::string long_file;
  std::string device = "cpu";
  std::vector<int> thread_counts = {1, 2};
  bool quick = false;
  CLI::App app("voxprint end-to-end benchmark (JSON on stdout)");
  app.add_option("--kit", kit, "reference kit directory");
  app.add_option("--model", model, "model file (default: the kit's .bin)");
  app.add_option("--long", long_file, "the 10 min audio file")->required();
  app.add_option("--threads", thread_counts, "thread counts to time")
      ->delimiter(',');
  app.add_option("--device", device, "cpu, cuda, auto");
  app.add_flag("--quick", quick, "one repetition of each timing");
  CLI11_PARSE(app, argc, argv);
  if (model.empty()) model = (fs::path(kit) / "models" / "pytorch_model.bin");

  const std::string short_file = (fs::path(kit) / "audio" / "sample.wav");
  const int reps = quick ? 1 : 3;
  const double budget_s = quick ? 0.0 : 5.0;
  voxprint::EmbedRequest whole;
  voxprint::EmbedRequest sliding;
  sliding.mode = voxprint::WindowMode::kSliding;
  sliding.window_duration_s = 3.0;
  sliding.window_step_s = 1.0;

  json result = {{"system", "voxprint"},
                 {"version", "voxprint (this tree)"},
                 {"threads", json::object()}};
  for (const int threads : thread_counts) {
    voxprint::ExtractorOptions options;
    options.model_path = model;
    options.device = device;
    options.backend.num_threads = threads;
    options.max_parallel_runs = 1;
    const int64_t t0 = voxprint::bench::NowNs();
    const voxprint::Extractor extractor(options);
    const double load_s = voxprint::bench::SecondsSince(t0);
    if (!result.contains("model_load_s")) {
      result["model_load_s"] = load_s;
      result["device"] = extractor.Device().description;
      result["accuracy"] = Accuracy(extractor, kit);
      const double error = result["accuracy"]["whole_rel_l2"];
      if (!(error <= kCheckTolerance)) {
        std::fprintf(stderr,
                     "voxprint-bench: whole embedding of sample.wav is off "
                     "the kit: rel L2 %g > %g\n",
                     error, kCheckTolerance);
        return 1;
      }
    }
    const auto short_result =
        extractor.EmbedFile(short_file, whole);  // warm-up
    double long_duration_s = 0.0;
    const size_t windows =
        extractor.EmbedFile(short_file, sliding).windows.size();
    json entry = {
        {"whole_30s",
         ToJson(TimeRuns([&] { extractor.EmbedFile(short_file, whole); }, reps,
                         budget_s))},
        {"sliding_3s_1s",
         ToJson(TimeRuns([&] { extractor.EmbedFile(short_file, sliding); },
                         reps, budget_s))},
        {"whole_10min",
         ToJson(TimeRuns(
             [&] {
               long_duration_s =
                   extractor.EmbedFile(long_file, whole).duration_s;
             },
             quick ? 1 : 2, 0.0))},
        {"model_load_s", load_s},
        {"device_threads", extractor.Device().num_threads},
    };
    entry["whole_30s"]["audio_s"] = short_result.duration_s;
    entry["whole_10min"]["audio_s"] = long_duration_s;
    entry["sliding_3s_1s"]["windows"] = windows;
    result["threads"][std::to_string(threads)] = entry;
  }
  result["peak_rss_mib"] = voxprint::bench::PeakRssMib();
  std::printf("%s\n", result.dump(1).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "voxprint-bench: %s\n", error.what());
    return 1;
  }
}
