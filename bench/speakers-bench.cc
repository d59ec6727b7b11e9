// The speakers store at scale: opening a store of 100,000 speakers and
// identifying one embedding against all of them (after the embedding: the
// matrix-vector product and the top-k), and the memory the open store holds.
// Targets (issue 13): open <= 1 s, identify <= 20 ms, RSS <= 200 MB.
//
//   voxprint-speakers-bench [--speakers=N] [google benchmark flags]
//
// The store is built once, in a child process (so that building it does not
// count in this process's memory), in $TMPDIR.
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "voxprint/speakers.h"

namespace {

namespace fs = std::filesystem;
constexpr int kDim = 256;
const std::string kModel(64, 'c');
int g_speakers = 100000;
std::string g_path;

std::vector<float> RandomUnit(std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(kDim);
  double norm = 0;
  for (float& x : v) {
    x = normal(rng);
    norm += x * x;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
  return v;
}

voxprint::SpeakerStoreOptions Options() {
  voxprint::SpeakerStoreOptions options;
  options.location = g_path;
  options.model_sha256 = kModel;
  options.embedding_dim = kDim;
  return options;
}

// Imports the speakers in documents of 5,000 (one transaction each).
void BuildStore() {
  auto store = voxprint::SpeakerStore::Open(Options());
  std::mt19937 rng(1);
  constexpr int kChunk = 5000;
  for (int first = 0; first < g_speakers; first += kChunk) {
    nlohmann::json speakers = nlohmann::json::array();
    for (int i = first; i < std::min(g_speakers, first + kChunk); ++i)
      speakers.push_back({{"name", "speaker " + std::to_string(i)},
                          {"enrollments",
                           {{{"source", "s.wav"},
                             {"audio_sha256", std::string(64, '0')},
                             {"duration_s", 10.0},
                             {"speech_s", 8.0},
                             {"embedding", RandomUnit(rng)}}}}});
    store->Import(nlohmann::json{
        {"format", "voxprint-voiceprints"},
        {"version", 1},
        {"model_sha256", kModel},
        {"embedding_dim", kDim},
        {"speakers",
         speakers}}.dump());
  }
}

double StatusMegabytes(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field, 0) == 0)
      return std::stod(line.substr(std::strlen(field))) / 1024.0;
  return 0.0;
}

std::unique_ptr<voxprint::SpeakerStore>& OpenStore() {
  static std::unique_ptr<voxprint::SpeakerStore> store =
      voxprint::SpeakerStore::Open(Options());
  return store;
}

void BM_OpenStore(benchmark::State& state) {
  for (auto _ : state) {
    auto store = voxprint::SpeakerStore::Open(Options());
    benchmark::DoNotOptimize(store->Size());
  }
  state.counters["speakers"] = g_speakers;
}

void BM_Identify(benchmark::State& state) {
  auto& store = OpenStore();
  std::mt19937 rng(2);
  const std::vector<float> query = RandomUnit(rng);
  for (auto _ : state) {
    auto result = store->Identify(query, 5, 0.5);
    benchmark::DoNotOptimize(result);
  }
  state.counters["speakers"] = static_cast<double>(store->Size());
  state.counters["rss_mb"] = StatusMegabytes("VmRSS:");
  state.counters["peak_rss_mb"] = StatusMegabytes("VmHWM:");
}

void BM_Verify(benchmark::State& state) {
  auto& store = OpenStore();
  std::mt19937 rng(3);
  const std::vector<float> query = RandomUnit(rng);
  for (auto _ : state) {
    auto result = store->Verify("speaker 4242", query, 0.5);
    benchmark::DoNotOptimize(result);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--speakers=", 11) == 0)
      g_speakers = std::stoi(argv[i] + 11);
    else
      args.push_back(argv[i]);
  }
  int count = static_cast<int>(args.size());
  g_path = (fs::temp_directory_path() /
            ("voxprint-speakers-bench-" + std::to_string(g_speakers) + ".db"))
               .string();
  if (!fs::exists(g_path)) {
    const auto start = std::chrono::steady_clock::now();
    const pid_t child = fork();
    if (child == 0) {
      try {
        BuildStore();
      } catch (const std::exception& error) {
        std::cerr << error.what() << std::endl;
        _exit(1);
      }
      _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fs::remove(g_path);
      return 1;
    }
    std::cerr << "built " << g_path << " (" << g_speakers << " speakers, "
              << fs::file_size(g_path) / 1048576 << " MB) in "
              << std::chrono::duration<double>(
                     std::chrono::steady_clock::now() - start)
                     .count()
              << " s" << std::endl;
  }
  benchmark::Initialize(&count, args.data());
  // The memory of the open store, measured before anything else runs.
  OpenStore();
  std::cerr << "RSS with the store open: " << StatusMegabytes("VmRSS:")
            << " MB (peak " << StatusMegabytes("VmHWM:") << " MB)" << std::endl;
  benchmark::RegisterBenchmark("OpenStore", BM_OpenStore)
      ->Unit(benchmark::kMillisecond)
      ->Iterations(3);
  benchmark::RegisterBenchmark("Identify", BM_Identify)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("Verify", BM_Verify)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
