#include "wav-builder.h"

#include <string>

namespace voxprint::testing {

void PutLittleEndian(std::vector<uint8_t>* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back((value >> (8 * i)) & 0xff);
}

std::vector<uint8_t> WavHeader(int format_tag, int channels, uint32_t rate_hz,
                               int bits, uint64_t declared_data_bytes) {
  std::vector<uint8_t> wav = {'R', 'I', 'F', 'F'};
  PutLittleEndian(&wav, 36 + declared_data_bytes, 4);
  for (char c : std::string("WAVEfmt ")) wav.push_back(c);
  PutLittleEndian(&wav, 16, 4);
  PutLittleEndian(&wav, format_tag, 2);
  PutLittleEndian(&wav, channels, 2);
  PutLittleEndian(&wav, rate_hz, 4);
  PutLittleEndian(&wav, static_cast<uint64_t>(rate_hz) * channels * bits / 8,
                  4);
  PutLittleEndian(&wav, channels * bits / 8, 2);
  PutLittleEndian(&wav, bits, 2);
  for (char c : std::string("data")) wav.push_back(c);
  PutLittleEndian(&wav, declared_data_bytes, 4);
  return wav;
}

}  // namespace voxprint::testing
