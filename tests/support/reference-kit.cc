#include "reference-kit.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace voxprint::testing {

std::filesystem::path ReferenceDir() {
  if (const char* env = std::getenv("VOXPRINT_REFERENCE_DIR"); env && *env)
    return env;
  return std::filesystem::path(VOXPRINT_SOURCE_DIR) / ".." / "shared" /
         "reference";
}

bool HasReferenceKit() {
  return std::filesystem::exists(ReferenceDir() / "manifest.json");
}

std::vector<uint8_t> ReadFileBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

NpyArray LoadNpy(const std::filesystem::path& path) {
  const std::vector<uint8_t> bytes = ReadFileBytes(path);
  auto fail = [&](const std::string& why) {
    throw std::runtime_error("bad .npy " + path.string() + ": " + why);
  };
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    fail("no NUMPY magic");
  const int major = bytes[6];
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = bytes[8] | (bytes[9] << 8);
    offset = 10;
  } else {
    if (bytes.size() < 12) fail("short header");
    header_len = bytes[8] | (bytes[9] << 8) | (bytes[10] << 16) |
                 (static_cast<size_t>(bytes[11]) << 24);
    offset = 12;
  }
  if (offset + header_len > bytes.size()) fail("header past end");
  const std::string header(bytes.begin() + offset,
                           bytes.begin() + offset + header_len);
  if (header.find("'<f4'") == std::string::npos) fail("not little-endian f4");
  if (header.find("'fortran_order': False") == std::string::npos)
    fail("fortran order");
  NpyArray array;
  const size_t open = header.find('(', header.find("'shape'"));
  const size_t close = header.find(')', open);
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  std::string dim;
  int64_t count = 1;
  while (std::getline(dims, dim, ',')) {
    if (dim.find_first_not_of(' ') == std::string::npos) continue;
    array.shape.push_back(std::stoll(dim));
    count *= array.shape.back();
  }
  const size_t data_offset = offset + header_len;
  if (data_offset + count * sizeof(float) != bytes.size())
    fail("size mismatch");
  array.values.resize(count);
  std::memcpy(array.values.data(), bytes.data() + data_offset,
              count * sizeof(float));
  return array;
}

double RelativeL2(std::span<const float> actual,
                  std::span<const float> expected) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < expected.size() && i < actual.size(); ++i) {
    const double d = static_cast<double>(actual[i]) - expected[i];
    diff += d * d;
    norm += static_cast<double>(expected[i]) * expected[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

namespace {
size_t WorstIndex(std::span<const float> actual,
                  std::span<const float> expected) {
  size_t worst = 0;
  double worst_diff = -1.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double d = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    if (!(d <= worst_diff)) {  // NaN counts as worst
      worst_diff = std::isnan(d) ? INFINITY : d;
      worst = i;
    }
  }
  return worst;
}
}  // namespace

::testing::AssertionResult CloseInRelativeL2(std::span<const float> actual,
                                             std::span<const float> expected,
                                             double tolerance) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << "size " << actual.size() << " != expected " << expected.size();
  const double error = RelativeL2(actual, expected);
  if (error <= tolerance) return ::testing::AssertionSuccess();
  const size_t i = WorstIndex(actual, expected);
  return ::testing::AssertionFailure()
         << "relative L2 error " << error << " > " << tolerance
         << "; worst index " << i << ": " << actual[i] << " vs expected "
         << expected[i];
}

::testing::AssertionResult CloseInMaxAbs(std::span<const float> actual,
                                         std::span<const float> expected,
                                         double tolerance) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << "size " << actual.size() << " != expected " << expected.size();
  if (expected.empty()) return ::testing::AssertionSuccess();
  const size_t i = WorstIndex(actual, expected);
  const double d = std::fabs(static_cast<double>(actual[i]) - expected[i]);
  if (d <= tolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "max abs error " << d << " > " << tolerance << " at index " << i
         << ": " << actual[i] << " vs expected " << expected[i];
}

}  // namespace voxprint::testing
