#include "backends/cpu/winograd-choice.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <dnnl.hpp>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <vector>

namespace voxprint::backends::cpu {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using DataType = memory::data_type;

constexpr char kF2x2Impl[] = "jit_fp32_wino_2x3";
constexpr char kF4x4Impl[] = "jit_wino_4x3";
// The cache is a few lines; anything larger is not ours.
constexpr std::streamsize kMaxCacheBytes = 64 * 1024;

bool StartsWith(const std::string& text, const char* prefix) {
  return text.rfind(prefix, 0) == 0;
}

std::string Getenv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// One line of /proc/cpuinfo per field asked for, first processor only.
std::string CpuinfoFields() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  const char* fields[] = {"vendor_id", "cpu family", "model", "model name",
                          "stepping"};
  std::map<std::string, std::string> found;
  std::string line;
  while (std::getline(cpuinfo, line) && !line.empty()) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    name.erase(name.find_last_not_of(" \t") + 1);
    for (const char* field : fields)
      if (name == field)
        found[name] = line.substr(std::min(colon + 2, line.size()));
  }
  std::string identity;
  for (const char* field : fields) identity += found[field] + "/";
  return identity;
}

// Wall time of the faster of `repeats` runs of each primitive, alternated so
// that a burst of load hits both.
struct Candidate {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward primitive;
  memory weights;
  memory scratchpad;
  double best_s = 1e30;
};

std::optional<dnnl::convolution_forward::primitive_desc> FindImpl(
    const dnnl::convolution_forward::desc& desc,
    const dnnl::primitive_attr& attr, const dnnl::engine& engine,
    const char* prefix) {
  dnnl::convolution_forward::primitive_desc pd(desc, attr, engine);
  do {
    if (StartsWith(pd.impl_info_str(), prefix)) return pd;
  } while (pd.next_impl());
  return std::nullopt;
}

}  // namespace

bool IsF2x2Winograd(const dnnl::convolution_forward::primitive_desc& pd) {
  return StartsWith(pd.impl_info_str(), kF2x2Impl);
}

std::optional<dnnl::convolution_forward::primitive_desc> F4x4Winograd(
    const dnnl::convolution_forward::desc& desc,
    const dnnl::primitive_attr& attr, const dnnl::engine& engine) {
  return FindImpl(desc, attr, engine, kF4x4Impl);
}

const char* WinogradKernelName(WinogradKernel kernel) {
  return kernel == WinogradKernel::kF4x4 ? "F(4x4,3x3)" : "F(2x2,3x3)";
}

std::string CpuIdentity() {
  const dnnl::version_t* v = dnnl::version();
  std::string identity =
      CpuinfoFields() + "isa " +
      std::to_string(static_cast<unsigned>(dnnl::get_effective_cpu_isa())) +
      "/oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) +
      "." + std::to_string(v->patch);
  std::replace_if(
      identity.begin(), identity.end(),
      [](char c) { return c == '\t' || c == '\n' || c == '\r'; }, ' ');
  return identity;
}

std::filesystem::path WinogradCachePath() {
  namespace fs = std::filesystem;
  const std::string own = Getenv("VOXPRINT_CACHE_DIR");
  if (own == "off") return {};
  fs::path dir;
  if (!own.empty()) {
    dir = own;
  } else if (const std::string xdg = Getenv("XDG_CACHE_HOME"); !xdg.empty()) {
    dir = fs::path(xdg) / "voxprint";
  } else if (const std::string home = Getenv("HOME"); !home.empty()) {
    dir = fs::path(home) / ".cache" / "voxprint";
  } else {
    return {};
  }
  return dir / "cpu-kernels.txt";
}

WinogradKernel TimeWinogradKernels(int num_threads) {
  omp_set_num_threads(num_threads);
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  // The first trunk layer of ResNet34 on 5 s of audio: 32 channels, 80 bins.
  const memory::dims data_dims = {1, 32, 80, 512};
  const memory::desc data(data_dims, DataType::f32, Tag::nChw16c);
  const memory::desc weights_any({32, 32, 3, 3}, DataType::f32, Tag::any);
  const memory::desc bias({32}, DataType::f32, Tag::x);
  const dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd,
      data, weights_any, bias, data, {1, 1}, {1, 1}, {1, 1});
  dnnl::post_ops relu;
  relu.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(relu);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);

  std::optional<dnnl::convolution_forward::primitive_desc> f2x2, f4x4;
  try {
    f2x2 = FindImpl(desc, attr, engine, kF2x2Impl);
    f4x4 = F4x4Winograd(desc, attr, engine);
  } catch (const dnnl::error&) {
    // No Winograd here at all: nothing to choose, any answer is unused.
  }
  if (!f2x2 || !f4x4)
    return f4x4 ? WinogradKernel::kF4x4 : WinogradKernel::kF2x2;

  std::mt19937 random(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> plain_weights(32 * 32 * 9);
  for (float& w : plain_weights) w = normal(random) * 0.1f;
  std::vector<float> bias_values(32, 0.01f);
  memory plain({{32, 32, 3, 3}, DataType::f32, Tag::oihw}, engine,
               plain_weights.data());
  memory bias_memory(bias, engine, bias_values.data());
  memory src(data, engine), dst(data, engine);
  {
    auto* values = static_cast<float*>(src.get_data_handle());
    for (size_t i = 0; i < data.get_size() / sizeof(float); ++i)
      values[i] = normal(random);
  }
  std::vector<Candidate> candidates;
  for (auto& pd : {*f2x2, *f4x4}) {
    Candidate candidate{pd, dnnl::convolution_forward(pd),
                        memory(pd.weights_desc(), engine),
                        memory(pd.scratchpad_desc(), engine)};
    dnnl::reorder(plain, candidate.weights)
        .execute(stream, plain, candidate.weights);
    candidates.push_back(std::move(candidate));
  }
  constexpr int kRepeats = 5;  // the first of each is a warm-up
  for (int repeat = 0; repeat < kRepeats; ++repeat) {
    for (Candidate& candidate : candidates) {
      const auto start = std::chrono::steady_clock::now();
      candidate.primitive.execute(
          stream, {{DNNL_ARG_SRC, src},
                   {DNNL_ARG_WEIGHTS, candidate.weights},
                   {DNNL_ARG_BIAS, bias_memory},
                   {DNNL_ARG_DST, dst},
                   {DNNL_ARG_SCRATCHPAD, candidate.scratchpad}});
      stream.wait();
      const double seconds = std::chrono::duration<double>(
                                 std::chrono::steady_clock::now() - start)
                                 .count();
      if (repeat > 0) candidate.best_s = std::min(candidate.best_s, seconds);
    }
  }
  // F(4x4) does fewer multiplications; F(2x2) must win clearly to be kept.
  return candidates[0].best_s < 0.9 * candidates[1].best_s
             ? WinogradKernel::kF2x2
             : WinogradKernel::kF4x4;
}

namespace {

std::optional<WinogradKernel> ReadCache(const std::filesystem::path& path,
                                        const std::string& key) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text(static_cast<size_t>(kMaxCacheBytes) + 1, '\0');
  in.read(text.data(), kMaxCacheBytes + 1);
  if (in.gcount() > kMaxCacheBytes) return std::nullopt;
  text.resize(static_cast<size_t>(in.gcount()));
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t tab = line.find('\t');
    if (tab == std::string::npos || line.substr(tab + 1) != key) continue;
    const std::string choice = line.substr(0, tab);
    if (choice == "f4x4") return WinogradKernel::kF4x4;
    if (choice == "f2x2") return WinogradKernel::kF2x2;
  }
  return std::nullopt;
}

// Adds (or replaces) this key's line; written to a temporary file and
// renamed, so a reader never sees half a file.
void WriteCache(const std::filesystem::path& path, const std::string& key,
                WinogradKernel kernel) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::create_directories(path.parent_path(), error);
  std::string kept;
  if (std::ifstream in(path, std::ios::binary); in) {
    std::string line;
    std::streamsize total = 0;
    while (std::getline(in, line) && total < kMaxCacheBytes) {
      total += static_cast<std::streamsize>(line.size()) + 1;
      const size_t tab = line.find('\t');
      if (tab != std::string::npos && line.substr(tab + 1) != key)
        kept += line + "\n";
    }
  }
  const fs::path temporary =
      path.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) return;
    out << kept << (kernel == WinogradKernel::kF4x4 ? "f4x4" : "f2x2") << '\t'
        << key << '\n';
    if (!out) {
      out.close();
      fs::remove(temporary, error);
      return;
    }
  }
  fs::rename(temporary, path, error);
  if (error) fs::remove(temporary, error);
}

}  // namespace

WinogradKernel CachedOrTimedWinogradKernel(const std::filesystem::path& cache,
                                           int num_threads) {
  const std::string key =
      CpuIdentity() + "/threads " + std::to_string(num_threads);
  if (!cache.empty())
    if (const auto kernel = ReadCache(cache, key)) return *kernel;
  const WinogradKernel kernel = TimeWinogradKernels(num_threads);
  if (!cache.empty()) WriteCache(cache, key, kernel);
  return kernel;
}

WinogradKernel FasterWinogradKernel(int num_threads) {
  static std::mutex mutex;
  static std::map<int, WinogradKernel> known;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto found = known.find(num_threads); found != known.end())
    return found->second;
  const WinogradKernel kernel =
      CachedOrTimedWinogradKernel(WinogradCachePath(), num_threads);
  known.emplace(num_threads, kernel);
  return kernel;
}

}  // namespace voxprint::backends::cpu
