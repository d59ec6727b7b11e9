#include "output-writers.h"

#include <bit>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "voxprint/error.h"

namespace voxprint::cli {

static_assert(std::endian::native == std::endian::little,
              ".npy output is written as little-endian float32");

EmbeddingMatrix ToMatrix(const EmbeddingResult& result) {
  EmbeddingMatrix matrix;
  if (result.mode == WindowMode::kWhole) {
    matrix.values = result.embedding;
    matrix.rows = 1;
    matrix.dim = static_cast<int64_t>(result.embedding.size());
    return matrix;
  }
  matrix.is_vector = false;
  matrix.rows = static_cast<int64_t>(result.windows.size());
  matrix.dim = result.windows.empty()
                   ? 0
                   : static_cast<int64_t>(result.windows[0].embedding.size());
  for (const WindowEmbedding& window : result.windows)
    matrix.values.insert(matrix.values.end(), window.embedding.begin(),
                         window.embedding.end());
  return matrix;
}

std::string EncodeNpy(const EmbeddingMatrix& matrix) {
  std::ostringstream dict;
  dict << "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  if (matrix.is_vector)
    dict << matrix.dim << ",";
  else
    dict << matrix.rows << ", " << matrix.dim;
  dict << "), }";
  std::string header = dict.str();
  // Magic (6) + version (2) + length (2) + header + '\n', padded to 64.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string bytes = "\x93NUMPY";
  bytes.push_back('\x01');
  bytes.push_back('\x00');
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  bytes += header;
  const size_t data_bytes = matrix.values.size() * sizeof(float);
  const size_t offset = bytes.size();
  bytes.resize(offset + data_bytes);
  std::memcpy(bytes.data() + offset, matrix.values.data(), data_bytes);
  return bytes;
}

std::string EncodeCsv(const EmbeddingResult& result) {
  const EmbeddingMatrix matrix = ToMatrix(result);
  std::ostringstream csv;
  csv.precision(9);
  const bool sliding = result.mode == WindowMode::kSliding;
  // padded: 1 for a zero-padded window, whose audio ends at covered_end_s.
  if (sliding) csv << "start_s,end_s,covered_end_s,padded,";
  for (int64_t d = 0; d < matrix.dim; ++d) csv << (d ? "," : "") << "dim_" << d;
  csv << "\n";
  for (int64_t r = 0; r < matrix.rows; ++r) {
    if (sliding)
      csv << result.windows[r].start_s << "," << result.windows[r].end_s << ","
          << (result.windows[r].padded ? result.windows[r].covered_end_s
                                       : result.windows[r].end_s)
          << "," << (result.windows[r].padded ? 1 : 0) << ",";
    for (int64_t d = 0; d < matrix.dim; ++d)
      csv << (d ? "," : "") << matrix.values[r * matrix.dim + d];
    csv << "\n";
  }
  return csv.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    throw Error(ErrorCode::kIoError, path + ": cannot open for writing");
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  if (!out) throw Error(ErrorCode::kIoError, path + ": write failed");
}

void WriteOutput(const std::string& path, const std::string& content) {
  if (path.empty())
    std::cout << content << std::flush;
  else
    WriteFile(path, content);
}

}  // namespace voxprint::cli
