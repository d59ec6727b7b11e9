// Small helpers shared by the benchmark programs: the kit's location, .npy
// reading, relative L2, peak RSS and a repeat-and-time loop.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "voxprint/extractor.h"

namespace voxprint::bench {

// $VOXPRINT_REFERENCE_DIR, else the directory configured at build time.
std::filesystem::path DefaultKitDir();

// A little-endian float32 C-order .npy array. Throws std::runtime_error.
struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> values;
};
NpyArray LoadNpy(const std::filesystem::path& path);

// |actual - expected| / |expected| in double; sizes must match (else +inf).
double RelativeL2(std::span<const float> actual,
                  std::span<const float> expected);

// Peak resident set size of this process so far, in MiB (getrusage).
double PeakRssMib();

// Wall-clock seconds of each run of `run`, repeated until it ran at least
// `min_reps` times and for at least `min_total_s` seconds.
struct Timing {
  double median_s = 0.0;
  double min_s = 0.0;
  int reps = 0;
};
Timing TimeRuns(const std::function<void()>& run, int min_reps,
                double min_total_s);

// The median of `values` (the mean of the middle two for an even count);
// 0 for none.
double Median(std::vector<double> values);

// {"median_s", "min_s", "reps"}: a timing in the programs' JSON.
nlohmann::json ToJson(const Timing& timing);

// Every window's embedding, one after another (to compare with the kit's
// [windows, dim] arrays).
std::vector<float> FlattenWindows(std::span<const WindowEmbedding> windows);

// Seconds since `start` on the steady clock.
double SecondsSince(int64_t start_ns);
int64_t NowNs();

}  // namespace voxprint::bench
