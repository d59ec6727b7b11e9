// Conversion of decoded FFmpeg sample buffers to mono float (internal).
#pragma once

#include <cstdint>
#include <vector>

namespace voxprint::audio {

// Appends `frames` mono samples to `mono`: every sample is converted to float
// exactly as libsndfile does (integers divided by 2^(bits-1), u8 centred on
// 128, floats unchanged, doubles rounded), then the channels are averaged as
// DownmixToMono does. `format` is an AVSampleFormat value; `planes` holds one
// pointer per channel for planar formats, else one interleaved buffer.
// Returns false, appending nothing, for a sample format it does not know.
bool AppendAsMono(int format, const uint8_t* const* planes, int channels,
                  int frames, std::vector<float>* mono);

}  // namespace voxprint::audio
