// embed-one MODEL AUDIO EXPECTED.npy: built against an installed voxprint
// (tests/install). Embeds AUDIO and compares it with the reference embedding;
// then checks that the library's errors reach the caller as voxprint::Error.
#include <voxprint/extractor.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// A float32 little-endian .npy file's values (format versions 1 to 3).
std::vector<float> ReadNpy(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(file)), {});
  if (bytes.size() < 12 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw std::runtime_error(path + ": not a .npy file");
  const bool v1 = bytes[6] == 1;
  size_t header = static_cast<unsigned char>(bytes[8]) |
                  static_cast<unsigned char>(bytes[9]) << 8;
  if (!v1)
    header |= static_cast<size_t>(static_cast<unsigned char>(bytes[10])) << 16 |
              static_cast<size_t>(static_cast<unsigned char>(bytes[11])) << 24;
  const size_t start = (v1 ? 10 : 12) + header;
  if (bytes.find("'<f4'") == std::string::npos || start > bytes.size())
    throw std::runtime_error(path + ": not float32 little-endian");
  std::vector<float> values((bytes.size() - start) / sizeof(float));
  std::memcpy(values.data(), bytes.data() + start,
              values.size() * sizeof(float));
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: embed-one MODEL AUDIO EXPECTED.npy\n";
    return 2;
  }
  voxprint::ExtractorOptions options;
  options.model_path = argv[1];
  options.device = "cpu";
  const voxprint::Extractor extractor(options);
  const std::vector<float> embedding = extractor.EmbedFile(argv[2]).embedding;
  const std::vector<float> expected = ReadNpy(argv[3]);
  if (embedding.size() != expected.size() ||
      static_cast<int>(embedding.size()) != extractor.EmbeddingDim()) {
    std::cerr << "embedding of " << embedding.size() << " values, expected "
              << expected.size() << "\n";
    return 1;
  }
  double worst = 0.0;
  for (size_t i = 0; i < embedding.size(); ++i)
    worst = std::max(worst, std::fabs(double{embedding[i]} - expected[i]));
  std::cout << "embedding: " << embedding.size()
            << " values, largest difference from the reference " << worst
            << ", device " << extractor.Device().description << "\n";
  if (!(worst <= 1e-4)) return 1;  // the golden tests' bound for 16 kHz WAV

  // An error thrown inside libvoxprint.so, caught here by its type and code.
  try {
    extractor.EmbedFile(argv[3]);  // the .npy file is no audio
    std::cerr << "a .npy file was accepted as audio\n";
    return 1;
  } catch (const voxprint::Error& error) {
    if (error.code() != voxprint::ErrorCode::kUnsupportedInput &&
        error.code() != voxprint::ErrorCode::kCorruptInput) {
      std::cerr << "unexpected error code for a non-audio file: "
                << error.what() << "\n";
      return 1;
    }
    std::cout << "error as expected: " << error.what() << "\n";
  }
  return 0;
}
