// End-to-end timings of voxprint through Extractor, as JSON on stdout, with
// the same contract as the peers in bench/peers/ (see bench/run.py):
//
//   voxprint-bench --long 10min.wav [--many DIR] [--kit DIR] [--model FILE]
//                  [--threads 1,2] [--device cpu] [--quick]
//
// Before timing, it checks the whole embedding of the kit's sample.wav
// against the expected one (relative L2 <= 1e-4) and exits 1 otherwise.
// Then, per thread count (ExtractorOptions.backend.num_threads): model load
// (Extractor construction), whole 30 s and whole 10 min from the file, and
// sliding 3 s / 1 s windows on the 30 s file; and the opt-in speed modes
// (shared-trunk sliding, bf16 precision where the CPU has native bf16), each
// timed and measured against the kit (key "opt_in"); with --many, the .wav
// files of DIR as one many-file job (Extractor::EmbedFiles, the network
// batched across files) and one file after another (key "many_files").
// Length row (key "length_row"): on a new Extractor warmed up on 7 s, the
// first L seconds of the long file for L = 1 ... 600 s, each length new to
// the process as every request is to a server ("first"), then the same
// excerpt again ("repeat"); three such rounds (one with --quick), medians.
#include <CLI/CLI.hpp>
#include <algorithm>
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
using voxprint::bench::FlattenWindows;
using voxprint::bench::TimeRuns;
using voxprint::bench::Timing;
using voxprint::bench::ToJson;

constexpr double kCheckTolerance = 1e-4;
constexpr double kLengthRowSeconds[] = {1,  2,  3,  5,  8,   13,
                                        21, 25, 30, 60, 120, 600};

// Smallest cosine similarity between matching windows of two results.
double MinWindowCosine(const voxprint::EmbeddingResult& a,
                       const voxprint::EmbeddingResult& b) {
  double lowest = 1.0;
  for (size_t i = 0; i < a.windows.size() && i < b.windows.size(); ++i)
    lowest =
        std::min(lowest, voxprint::CosineSimilarity(a.windows[i].embedding,
                                                    b.windows[i].embedding));
  return lowest;
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
           FlattenWindows(extractor.EmbedFile(audio.string(), sliding).windows),
           voxprint::bench::LoadNpy(expected / "sample_wav.sliding_3.0_1.0.npy")
               .values)},
  };
}

// Errors of an opt-in mode against the kit's sample.wav embeddings and
// against the exact fp32 windows.
json OptInAccuracy(const voxprint::Extractor& extractor, const fs::path& kit,
                   const voxprint::EmbedRequest& sliding,
                   const voxprint::EmbeddingResult& exact_windows) {
  const fs::path audio = kit / "audio" / "sample.wav";
  const fs::path expected = kit / "expected";
  const auto windows = extractor.EmbedFile(audio.string(), sliding);
  json accuracy = {
      {"sliding_3_1_rel_l2",
       voxprint::bench::RelativeL2(
           FlattenWindows(windows.windows),
           voxprint::bench::LoadNpy(expected / "sample_wav.sliding_3.0_1.0.npy")
               .values)},
      {"sliding_min_cosine_to_exact", MinWindowCosine(windows, exact_windows)},
  };
  if (!sliding.shared_trunk)
    accuracy["whole_rel_l2"] = voxprint::bench::RelativeL2(
        extractor.EmbedFile(audio.string()).embedding,
        voxprint::bench::LoadNpy(expected / "sample_wav.whole.npy").values);
  return accuracy;
}

// Seconds of embedding the first L seconds of `samples` (16 kHz, in
// memory: decoding is not timed), per L: the first time an Extractor sees
// that length and once more. `rounds` Extractors, each warmed up on 7 s,
// go through every length in turn; each length's figures are the median
// over the rounds, so that a burst of load on a shared machine (seconds
// long) shifts one round's point, not the row.
json LengthRow(const voxprint::ExtractorOptions& options,
               std::span<const float> samples, int rounds) {
  const auto excerpt = [&](double seconds) {
    const size_t count =
        std::min(samples.size(),
                 static_cast<size_t>(seconds * voxprint::kModelSampleRateHz));
    return samples.first(count);
  };
  constexpr size_t kLengths = std::size(kLengthRowSeconds);
  std::vector<std::vector<double>> first(kLengths), repeat(kLengths);
  for (int round = 0; round < rounds; ++round) {
    const voxprint::Extractor extractor(options);
    extractor.EmbedSamples(excerpt(7.0), voxprint::kModelSampleRateHz);
    for (size_t i = 0; i < kLengths; ++i) {
      const auto audio = excerpt(kLengthRowSeconds[i]);
      const auto embed = [&] {
        extractor.EmbedSamples(audio, voxprint::kModelSampleRateHz);
      };
      first[i].push_back(TimeRuns(embed, 1, 0.0).min_s);
      repeat[i].push_back(
          TimeRuns(embed, kLengthRowSeconds[i] > 60 ? 1 : 2, 0.0).min_s);
    }
  }
  json rows = json::array();
  for (size_t i = 0; i < kLengths; ++i)
    rows.push_back(
        {{"audio_s", static_cast<double>(excerpt(kLengthRowSeconds[i]).size()) /
                         voxprint::kModelSampleRateHz},
         {"first_s", voxprint::bench::Median(first[i])},
         {"repeat_s", voxprint::bench::Median(repeat[i])},
         {"first_runs_s", first[i]},
         {"repeat_runs_s", repeat[i]}});
  return rows;
}

int Run(int argc, char** argv) {
  std::string kit = voxprint::bench::DefaultKitDir().string();
  std::string model;
  std::string long_file;
  std::string many_dir;
  std::string device = "cpu";
  std::vector<int> thread_counts = {1, 2};
  bool quick = false;
  CLI::App app("voxprint end-to-end benchmark (JSON on stdout)");
  app.add_option("--kit", kit, "reference kit directory");
  app.add_option("--model", model, "model file (default: the kit's .bin)");
  app.add_option("--long", long_file, "the 10 min audio file")->required();
  app.add_option("--many", many_dir, "a directory of short .wav files");
  app.add_option("--threads", thread_counts, "thread counts to time")
      ->delimiter(',');
  app.add_option("--device", device, "cpu, cuda, auto");
  app.add_flag("--quick", quick, "one repetition of each timing");
  CLI11_PARSE(app, argc, argv);
  if (model.empty()) model = (fs::path(kit) / "models" / "pytorch_model.bin");

  const std::string short_file = (fs::path(kit) / "audio" / "sample.wav");
  std::vector<std::string> many_files;
  if (!many_dir.empty()) {
    for (const auto& entry : fs::directory_iterator(many_dir))
      if (entry.path().extension() == ".wav")
        many_files.push_back(entry.path().string());
    std::sort(many_files.begin(), many_files.end());
  }
  const int reps = quick ? 1 : 3;
  const double budget_s = quick ? 0.0 : 5.0;
  voxprint::EmbedRequest whole;
  voxprint::EmbedRequest sliding;
  sliding.mode = voxprint::WindowMode::kSliding;
  sliding.window_duration_s = 3.0;
  sliding.window_step_s = 1.0;
  voxprint::EmbedRequest shared_trunk = sliding;
  shared_trunk.shared_trunk = true;

  json result = {{"system", "voxprint"},
                 {"version", "voxprint (this tree)"},
                 {"threads", json::object()}};
  // The length row's excerpts, decoded once for every thread count.
  const std::vector<float> long_samples =
      voxprint::LoadAudio16k(long_file).samples;
  for (const int threads : thread_counts) {
    voxprint::ExtractorOptions options;
    options.model_path = model;
    options.device = device;
    options.backend.num_threads = threads;
    options.max_parallel_runs = 1;
    // As `voxprint embed` loads it; the peers hash nothing either.
    options.model_checksum = false;
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
    // Exact fp32 windows: their count for the rates, and what the opt-in
    // modes are compared with.
    const auto exact_windows = extractor.EmbedFile(short_file, sliding);
    const size_t windows = exact_windows.windows.size();
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

    // Opt-in speed modes: shared-trunk sliding on this extractor, bf16 and
    // mixed precision on extractors of their own (skipped where the CPU
    // would only emulate bf16).
    json opt_in = {
        {"shared_trunk",
         {{"sliding_3s_1s",
           ToJson(
               TimeRuns([&] { extractor.EmbedFile(short_file, shared_trunk); },
                        reps, budget_s))}}}};
    opt_in["shared_trunk"]["sliding_3s_1s"]["windows"] = windows;
    if (!result.contains("opt_in_accuracy"))
      result["opt_in_accuracy"]["shared_trunk"] =
          OptInAccuracy(extractor, kit, shared_trunk, exact_windows);
    for (const char* precision : {"bf16", "mixed"}) {
      try {
        voxprint::ExtractorOptions fast_options = options;
        fast_options.backend.precision = precision;
        const voxprint::Extractor fast(fast_options);
        fast.EmbedFile(short_file, whole);  // warm-up
        opt_in[precision] = {
            {"whole_30s",
             ToJson(TimeRuns([&] { fast.EmbedFile(short_file, whole); }, reps,
                             budget_s))},
            {"sliding_3s_1s",
             ToJson(TimeRuns([&] { fast.EmbedFile(short_file, sliding); }, reps,
                             budget_s))}};
        opt_in[precision]["whole_30s"]["audio_s"] = short_result.duration_s;
        opt_in[precision]["sliding_3s_1s"]["windows"] = windows;
        if (!result["opt_in_accuracy"].contains(precision))
          result["opt_in_accuracy"][precision] =
              OptInAccuracy(fast, kit, sliding, exact_windows);
      } catch (const voxprint::Error& error) {
        if (error.code() != voxprint::ErrorCode::kInvalidArgument) throw;
        opt_in[precision] = {{"skipped", error.what()}};
      }
    }
    entry["opt_in"] = opt_in;

    if (!many_files.empty()) {
      double audio_s = 0.0;
      const auto batched = [&] {
        audio_s = 0.0;
        extractor.EmbedFiles(many_files, whole,
                             [&](size_t, voxprint::BatchOutcome&& outcome) {
                               if (outcome.error) throw *outcome.error;
                               audio_s += outcome.result->duration_s;
                             });
      };
      const auto one_by_one = [&] {
        for (const std::string& file : many_files)
          extractor.EmbedFile(file, whole);
      };
      // Each timed right after its own warm-up: the 32 lengths one by one
      // compile more shapes than a session caches, which would evict the
      // batches' shapes (and their Winograd weights) in between.
      batched();
      const Timing batched_timing = TimeRuns(batched, reps, budget_s);
      one_by_one();
      const Timing one_by_one_timing = TimeRuns(one_by_one, reps, budget_s);
      entry["many_files"] = {{"batched", ToJson(batched_timing)},
                             {"one_by_one", ToJson(one_by_one_timing)},
                             {"files", many_files.size()},
                             {"audio_s", audio_s}};
    }
    entry["length_row"] = LengthRow(options, long_samples, quick ? 1 : 3);
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
