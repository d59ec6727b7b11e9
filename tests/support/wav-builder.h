// Hand-made RIFF/WAVE bytes for decoder tests, including lying headers.
#pragma once

#include <cstdint>
#include <vector>

namespace voxprint::testing {

// Appends `value` as `bytes` little-endian bytes.
void PutLittleEndian(std::vector<uint8_t>* out, uint64_t value, int bytes);

// A 44-byte canonical WAV header: format tag 1 (PCM) or 3 (IEEE float).
// `declared_data_bytes` is what the header claims, which tests may set to
// more than the data that follows.
std::vector<uint8_t> WavHeader(int format_tag, int channels, uint32_t rate_hz,
                               int bits, uint64_t declared_data_bytes);

}  // namespace voxprint::testing
