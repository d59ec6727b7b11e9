// GPU timings of voxprint's pipeline from decoded samples, as JSON on stdout,
// next to `pytorch_reference.py gpu` (same input, same measurements):
//
//   voxprint-gpu-bench --samples sample.f32 [--kit DIR] [--model FILE]
//                      [--device cuda] [--precision fp32|tf32]
//                      [--batches 1,8,32] [--files 1,4,16] [--repeat 20]
//
// --samples is the kit's sample.wav already decoded (raw float32, 16 kHz
// mono): the GPU machines have no FFmpeg, so decoding (about 1 % of a
// whole-file run on the CPU) is left out here and in the peer alike. The
// rest is the library's own pipeline (pipeline::SampleEmbedder, what the
// Extractor runs after decoding): fbank on the host, mean subtraction, the
// network on the device.
//
// Before timing, the whole and sliding 3 s / 1 s embeddings of the samples
// are checked against the kit (relative L2 <= 1e-4 in fp32; exit 1
// otherwise; other precisions report their error). Then:
//   whole_30s        one 30 s input per run, end to end and network alone;
//   whole_batched    B copies of the 30 s input as one batch (files of one
//                    length), network alone, per batch size in --files;
//   sliding_3s_1s    the samples repeated --repeat times (10 min), every
//                    window with batches of B (--batches) end to end, and
//                    the network alone on one batch of B windows;
//   many_files       32 clips of 2-4 s cut from the samples, batched by
//                    length (Session::RunMixed) and one after another.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench-support.h"
#include "model/model-file.h"
#include "pipeline/sample-embedder.h"
#include "pipeline/session-pool.h"
#include "voxprint/backend.h"
#include "voxprint/extractor.h"
#include "voxprint/features.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using voxprint::bench::FlattenWindows;
using voxprint::bench::RelativeL2;
using voxprint::bench::TimeRuns;
using voxprint::bench::ToJson;

constexpr int kRateHz = 16000;
constexpr double kCheckTolerance = 1e-4;

std::vector<float> ReadRawFloats(const fs::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  const auto bytes = static_cast<size_t>(in.tellg());
  if (bytes == 0 || bytes % sizeof(float) != 0)
    throw std::runtime_error(path.string() + ": not raw float32 samples");
  std::vector<float> samples(bytes / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(samples.data()),
          static_cast<std::streamsize>(bytes));
  return samples;
}

int Run(int argc, char** argv) {
  std::string kit = voxprint::bench::DefaultKitDir().string();
  std::string model;
  std::string samples_path;
  std::string device = "cuda";
  std::string precision = "fp32";
  std::vector<int> batches = {1, 8, 32};
  std::vector<int> file_batches = {1, 4, 16};
  int repeat = 20;
  CLI::App app("voxprint GPU benchmark from decoded samples (JSON on stdout)");
  app.add_option("--samples", samples_path,
                 "raw float32 16 kHz mono samples of the kit's sample.wav")
      ->required();
  app.add_option("--kit", kit, "reference kit directory");
  app.add_option("--model", model, "model file (default: the kit's .bin)");
  app.add_option("--device", device, "cuda, cuda:N, cpu");
  app.add_option("--precision", precision, "fp32 or tf32");
  app.add_option("--batches", batches, "sliding-window batch sizes")
      ->delimiter(',');
  app.add_option("--files", file_batches, "whole-file batch sizes")
      ->delimiter(',');
  app.add_option("--repeat", repeat, "copies of the samples for sliding")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  if (model.empty()) model = (fs::path(kit) / "models" / "pytorch_model.bin");
  const fs::path expected = fs::path(kit) / "expected";

  const std::vector<float> samples = ReadRawFloats(samples_path);
  const double audio_s = static_cast<double>(samples.size()) / kRateHz;

  const int64_t t0 = voxprint::bench::NowNs();
  voxprint::model::LoadOptions load_options;
  load_options.checksum = false;
  auto loaded = voxprint::model::LoadModelFile(model, load_options);
  voxprint::BackendOptions options;
  options.precision = precision;
  const auto backend = voxprint::CreateBackend(device, options);
  const auto prepared = backend->Prepare(std::move(loaded.weights));
  voxprint::pipeline::SessionPool sessions(prepared, 1);
  const voxprint::FbankOptions fbank;
  const int dim = prepared->EmbeddingDim();
  const voxprint::pipeline::SampleEmbedder embedder(
      fbank, sessions, dim, backend->Info().batch_frames);
  const double load_s = voxprint::bench::SecondsSince(t0);

  voxprint::EmbedRequest sliding;
  sliding.mode = voxprint::WindowMode::kSliding;
  sliding.window_duration_s = 3.0;
  sliding.window_step_s = 1.0;
  // Accuracy against the kit (also the warm-up of both shapes).
  const voxprint::Features whole = embedder.FeaturesOf(samples, "samples");
  const auto run_whole = [&] {
    return embedder.Run(whole.values, 1, whole.num_frames);
  };
  json result = {
      {"system", "voxprint"},
      {"device", backend->Info().description},
      {"precision", precision},
      {"model_load_s", load_s},
      {"sliding_batch_frames", backend->Info().batch_frames},
      {"accuracy",
       {{"fbank_rel_l2",
         RelativeL2(whole.values,
                    voxprint::bench::LoadNpy(expected / "sample_wav.fbank.npy")
                        .values)},
        {"whole_rel_l2",
         RelativeL2(run_whole(),
                    voxprint::bench::LoadNpy(expected / "sample_wav.whole.npy")
                        .values)},
        {"sliding_3_1_rel_l2",
         RelativeL2(FlattenWindows(embedder.EmbedSliding(samples, sliding, 0.0,
                                                         "samples")),
                    voxprint::bench::LoadNpy(expected /
                                             "sample_wav.sliding_3.0_1.0.npy")
                        .values)}}},
  };
  const double error = result["accuracy"]["whole_rel_l2"];
  if (precision == "fp32" && !(error <= kCheckTolerance)) {
    std::fprintf(stderr,
                 "voxprint-gpu-bench: whole embedding of the samples is off "
                 "the kit: rel L2 %g > %g\n",
                 error, kCheckTolerance);
    std::printf("%s\n", result.dump(1).c_str());
    return 1;
  }

  const int reps = 5;
  const double budget_s = 2.0;
  result["whole_30s"] = {
      {"end_to_end",
       ToJson(TimeRuns([&] { embedder.EmbedWhole(samples, "samples"); }, reps,
                       budget_s))},
      {"network", ToJson(TimeRuns(run_whole, reps, budget_s))},
      {"audio_s", audio_s}};

  for (const int batch : file_batches) {
    std::vector<float> copies;
    copies.reserve(whole.values.size() * batch);
    for (int i = 0; i < batch; ++i)
      copies.insert(copies.end(), whole.values.begin(), whole.values.end());
    const auto run = [&] { embedder.Run(copies, batch, whole.num_frames); };
    run();  // warm-up: this shape's algorithms and buffers
    result["whole_batched"][std::to_string(batch)] = {
        {"network", ToJson(TimeRuns(run, reps, budget_s))},
        {"audio_s", audio_s * batch}};
  }

  // Sliding windows over the samples repeated: end to end through the
  // library's sliding path with batches of B windows, and the network alone
  // on batches of B copies of one window.
  std::vector<float> long_samples;
  long_samples.reserve(samples.size() * repeat);
  for (int i = 0; i < repeat; ++i)
    long_samples.insert(long_samples.end(), samples.begin(), samples.end());
  const int64_t window_frames = fbank.NumFrames(3 * kRateHz);
  const std::span<const float> one_window(
      whole.values.data(),
      static_cast<size_t>(window_frames) * fbank.num_mel_bins);
  for (const int batch : batches) {
    const voxprint::pipeline::SampleEmbedder batched(fbank, sessions, dim,
                                                     batch * window_frames);
    size_t windows = 0;
    const auto run = [&] {
      windows =
          batched.EmbedSliding(long_samples, sliding, 0.0, "samples").size();
    };
    std::vector<float> copies;
    for (int i = 0; i < batch; ++i)
      copies.insert(copies.end(), one_window.begin(), one_window.end());
    const auto network = [&] { embedder.Run(copies, batch, window_frames); };
    run();  // warm-up
    network();
    result["sliding_3s_1s"][std::to_string(batch)] = {
        {"end_to_end", ToJson(TimeRuns(run, 3, budget_s))},
        {"network_batch", ToJson(TimeRuns(network, reps, budget_s))},
        {"batch", batch},
        {"windows", windows}};
  }
  // Many short files: 32 clips of 2-4 s cut from the samples, as one
  // mixed-length job (features, then Session::RunMixed, which batches them
  // by length) and one after another.
  std::vector<std::vector<float>> clips;
  double clips_s = 0.0;
  for (int i = 0; i < 32; ++i) {
    const double start_s = (i * 7) % 26;
    const double duration_s = 2.0 + (i * 13 % 21) / 10.0;
    const auto first =
        samples.begin() + static_cast<int64_t>(start_s * kRateHz);
    clips.emplace_back(first,
                       first + static_cast<int64_t>(duration_s * kRateHz));
    clips_s += duration_s;
  }
  const auto many_batched = [&] {
    std::vector<voxprint::Features> features;
    std::vector<voxprint::Session::Input> inputs;
    for (const auto& clip : clips)
      features.push_back(embedder.FeaturesOf(clip, "clip"));
    for (const auto& f : features) inputs.push_back({f.values, f.num_frames});
    auto session = sessions.Borrow();
    return session->RunMixed(inputs);
  };
  const auto many_one_by_one = [&] {
    std::vector<float> all;
    for (const auto& clip : clips) {
      const auto one = embedder.EmbedWhole(clip, "clip");
      all.insert(all.end(), one.begin(), one.end());
    }
    return all;
  };
  result["accuracy"]["many_files_batched_vs_alone_rel_l2"] =
      RelativeL2(many_batched(), many_one_by_one());
  result["many_files"] = {
      {"batched", ToJson(TimeRuns(many_batched, reps, budget_s))},
      {"one_by_one", ToJson(TimeRuns(many_one_by_one, reps, budget_s))},
      {"files", clips.size()},
      {"audio_s", clips_s}};
  result["host_threads"] = std::thread::hardware_concurrency();
  result["peak_rss_mib"] = voxprint::bench::PeakRssMib();
  std::printf("%s\n", result.dump(1).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "voxprint-gpu-bench: %s\n", error.what());
    return 1;
  }
}
