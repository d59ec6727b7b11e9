#include "bench-support.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <regex>
#include <stdexcept>

namespace voxprint::bench {

std::filesystem::path DefaultKitDir() {
  if (const char* dir = std::getenv("VOXPRINT_REFERENCE_DIR"); dir && *dir) {
    return dir;
  }
  return VOXPRINT_BENCH_KIT_DIR;
}

NpyArray LoadNpy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(1, 5, "NUMPY") != 0) {
    throw std::runtime_error(path.string() + ": not a .npy file");
  }
  const auto byte = [&](size_t i) {
    return static_cast<size_t>(static_cast<unsigned char>(bytes[i]));
  };
  const bool v1 = bytes[6] == 1;
  const size_t header_start = v1 ? 10 : 12;
  const size_t header_len =
      v1 ? byte(8) | byte(9) << 8
         : byte(8) | byte(9) << 8 | byte(10) << 16 | byte(11) << 24;
  if (bytes.size() < header_start + header_len) {
    throw std::runtime_error(path.string() + ": truncated header");
  }
  const std::string header = bytes.substr(header_start, header_len);
  if (header.find("'descr': '<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos) {
    throw std::runtime_error(path.string() +
                             ": expected little-endian float32, C order");
  }
  std::smatch match;
  if (!std::regex_search(header, match,
                         std::regex(R"('shape': \(([^)]*)\))"))) {
    throw std::runtime_error(path.string() + ": no shape in header");
  }
  NpyArray array;
  const std::string dims = match[1];
  const std::regex number(R"(\d+)");
  int64_t count = 1;
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), number);
       it != std::sregex_iterator(); ++it) {
    array.shape.push_back(std::stoll(it->str()));
    count *= array.shape.back();
  }
  const size_t data_start = header_start + header_len;
  if (bytes.size() - data_start != static_cast<size_t>(count) * sizeof(float)) {
    throw std::runtime_error(path.string() +
                             ": data size does not match shape");
  }
  array.values.resize(count);
  std::memcpy(array.values.data(), bytes.data() + data_start,
              count * sizeof(float));
  return array;
}

double RelativeL2(std::span<const float> actual,
                  std::span<const float> expected) {
  if (actual.size() != expected.size()) {
    return std::numeric_limits<double>::infinity();
  }
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double d = static_cast<double>(actual[i]) - expected[i];
    diff += d * d;
    norm += static_cast<double>(expected[i]) * expected[i];
  }
  return std::sqrt(diff / norm);
}

double PeakRssMib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is KiB
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double SecondsSince(int64_t start_ns) { return (NowNs() - start_ns) * 1e-9; }

double Median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

Timing TimeRuns(const std::function<void()>& run, int min_reps,
                double min_total_s) {
  std::vector<double> times;
  const int64_t start = NowNs();
  while (static_cast<int>(times.size()) < min_reps ||
         SecondsSince(start) < min_total_s) {
    const int64_t t0 = NowNs();
    run();
    times.push_back(SecondsSince(t0));
  }
  Timing timing;
  timing.median_s = Median(times);
  timing.min_s = *std::min_element(times.begin(), times.end());
  timing.reps = static_cast<int>(times.size());
  return timing;
}

nlohmann::json ToJson(const Timing& timing) {
  return {{"median_s", timing.median_s},
          {"min_s", timing.min_s},
          {"reps", timing.reps}};
}

std::vector<float> FlattenWindows(std::span<const WindowEmbedding> windows) {
  std::vector<float> values;
  for (const WindowEmbedding& window : windows)
    values.insert(values.end(), window.embedding.begin(),
                  window.embedding.end());
  return values;
}

}  // namespace voxprint::bench
