// A bounded reader of NumPy .npy matrices (AS-Norm cohorts) and a writer.
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "voxprint/error.h"
#include "voxprint/speakers.h"

namespace voxprint {

namespace {

constexpr size_t kMaxHeaderBytes = 65536;

Error Bad(const std::string& name, const std::string& why) {
  return Error(ErrorCode::kInvalidArgument,
               name + ": not a usable .npy matrix: " + why);
}

}  // namespace

NpyMatrix ParseNpyMatrix(std::span<const uint8_t> bytes,
                         const std::string& name) {
  static_assert(std::endian::native == std::endian::little,
                "the .npy reader assumes a little-endian machine");
  static const uint8_t kMagic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0)
    throw Bad(name, "no NumPy magic");
  const int major = bytes[6];
  size_t header_length = 0, offset = 0;
  if (major == 1) {
    header_length = bytes[8] | (size_t(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw Bad(name, "truncated header");
    header_length = bytes[8] | (size_t(bytes[9]) << 8) |
                    (size_t(bytes[10]) << 16) | (size_t(bytes[11]) << 24);
    offset = 12;
  } else {
    throw Bad(name, "format version " + std::to_string(major));
  }
  if (header_length > kMaxHeaderBytes || offset + header_length > bytes.size())
    throw Bad(name, "header longer than the file or 64 KiB");
  const std::string header(reinterpret_cast<const char*>(bytes.data()) + offset,
                           header_length);
  std::smatch match;
  if (!std::regex_search(
          header, match,
          std::regex(R"('descr'\s*:\s*'([<>|=]?)([a-z])(\d+)')")))
    throw Bad(name, "no dtype in the header");
  const std::string order = match[1], kind = match[2], size = match[3];
  if (order == ">" || kind != "f" || (size != "4" && size != "8"))
    throw Bad(name, "dtype " + order + kind + size +
                        " (only little-endian float32 or float64)");
  const size_t element = size == "4" ? 4 : 8;
  if (!std::regex_search(header, match,
                         std::regex(R"('fortran_order'\s*:\s*(True|False))")))
    throw Bad(name, "no fortran_order in the header");
  if (match[1] == "True") throw Bad(name, "Fortran order (only C order)");
  if (!std::regex_search(
          header, match,
          std::regex(
              R"('shape'\s*:\s*\(\s*(\d{1,12})\s*,\s*(\d{1,12})\s*,?\s*\))")))
    throw Bad(name, "shape is not 2-D");
  NpyMatrix matrix;
  matrix.rows = std::stoll(match[1]);
  matrix.cols = std::stoll(match[2]);
  const size_t data_offset = offset + header_length;
  const size_t available = (bytes.size() - data_offset) / element;
  if (matrix.cols == 0 || matrix.rows == 0 ||
      static_cast<size_t>(matrix.rows) > available / matrix.cols ||
      static_cast<size_t>(matrix.rows * matrix.cols) != available ||
      (bytes.size() - data_offset) % element != 0)
    throw Bad(name, "shape (" + std::to_string(matrix.rows) + ", " +
                        std::to_string(matrix.cols) + ") does not match the " +
                        std::to_string(bytes.size() - data_offset) +
                        " bytes of data");
  matrix.values.resize(available);
  const uint8_t* data = bytes.data() + data_offset;
  for (size_t i = 0; i < available; ++i) {
    if (element == 4) {
      std::memcpy(&matrix.values[i], data + 4 * i, 4);
    } else {
      double value;
      std::memcpy(&value, data + 8 * i, 8);
      matrix.values[i] = static_cast<float>(value);
    }
    if (!std::isfinite(matrix.values[i]))
      throw Bad(name, "value " + std::to_string(i) + " is NaN or infinite");
  }
  return matrix;
}

NpyMatrix ReadNpyMatrix(const std::string& path, int64_t max_bytes) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file)
    throw Error(ErrorCode::kIoError,
                path + ": cannot open: " + std::strerror(errno));
  const std::streamoff size = file.tellg();
  if (size < 0)
    throw Error(ErrorCode::kIoError, path + ": cannot read its size");
  if (size > max_bytes)
    throw Bad(path, "larger than " + std::to_string(max_bytes) + " bytes");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  file.seekg(0);
  if (!file.read(reinterpret_cast<char*>(bytes.data()), size))
    throw Error(ErrorCode::kIoError, path + ": cannot read");
  return ParseNpyMatrix(bytes, path);
}

void WriteNpyMatrix(const std::string& path, std::span<const float> values,
                    int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0 || values.size() != static_cast<size_t>(rows * cols))
    throw Error(ErrorCode::kInvalidArgument,
                "matrix shape does not match its values");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) +
                       "), }";
  // Data starts at a multiple of 64 bytes; the header ends with '\n'.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file)
    throw Error(ErrorCode::kIoError,
                path + ": cannot write: " + std::strerror(errno));
  const char preamble[] = {'\x93',
                           'N',
                           'U',
                           'M',
                           'P',
                           'Y',
                           1,
                           0,
                           static_cast<char>(header.size() & 0xff),
                           static_cast<char>(header.size() >> 8)};
  file.write(preamble, sizeof preamble);
  file.write(header.data(), static_cast<std::streamsize>(header.size()));
  file.write(reinterpret_cast<const char*>(values.data()),
             static_cast<std::streamsize>(values.size() * sizeof(float)));
  if (!file.flush()) throw Error(ErrorCode::kIoError, path + ": cannot write");
}

}  // namespace voxprint
