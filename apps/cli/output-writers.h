// Writing embeddings to files: .npy (float32, C order) and CSV.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "voxprint/extractor.h"

namespace voxprint::cli {

// Rows of a result: one row (whole) or one per window (sliding).
struct EmbeddingMatrix {
  std::vector<float> values;  // row-major [rows, dim]
  int64_t rows = 0;
  int64_t dim = 0;
  bool is_vector = true;  // whole mode: shape [dim], else [rows, dim]
};
EmbeddingMatrix ToMatrix(const EmbeddingResult& result);

// The bytes of a .npy file holding `matrix` as little-endian float32.
std::string EncodeNpy(const EmbeddingMatrix& matrix);

// CSV: header "dim_0,...,dim_N" (sliding: "start_s,end_s,dim_0,...").
std::string EncodeCsv(const EmbeddingResult& result);

// Writes `content` to `path`; throws Error(kIoError) naming the path.
void WriteFile(const std::string& path, const std::string& content);

// A command's output: `content` on stdout when `path` is empty (the
// default of --output), else WriteFile.
void WriteOutput(const std::string& path, const std::string& content);

}  // namespace voxprint::cli
