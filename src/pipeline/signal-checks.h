// Warnings about inputs whose embedding deserves less trust (silence, too
// little speech, a truncated file, clipping, zero-padded windows). They
// judge the signal's energy only: the embedding itself is unchanged.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "voxprint/extractor.h"

namespace voxprint::pipeline {

// Below this much sound above the background, speaker similarities scatter.
inline constexpr double kMinSpeechSeconds = 2.0;

// Warnings from the 16 kHz samples analysed (after any excerpt):
// no_signal, short_speech, little_speech, clipping.
std::vector<ResultWarning> SignalWarnings(std::span<const float> samples_16k);

// truncated: the whole input decoded to clearly less than its header
// declares (`header_s` <= 0: the header did not say).
std::vector<ResultWarning> LengthWarnings(double decoded_s, double header_s);

// The duration a WAV declares in its fmt and data chunks, from the file's
// first bytes; 0 when `head` is not a RIFF WAV or does not say. FFmpeg
// clamps a data chunk to the bytes present, so a truncated WAV looks whole
// to it. Bounded: reads only inside `head`.
double DeclaredSeconds(std::span<const uint8_t> head);

// The first 64 KiB of a regular file (empty for anything else: a pipe must
// not be read twice).
std::vector<uint8_t> FileHead(const std::string& path);

// Marks each window that runs past `audio_end_s` (the end of the audio
// analysed, in seconds of the input) as padded, with the span it really
// covers; with `drop_partial`, removes them unless no window would be left.
// Adds padded_window when a padded window remains.
void MarkPaddedWindows(std::vector<WindowEmbedding>& windows,
                       double audio_end_s, bool drop_partial,
                       std::vector<ResultWarning>& warnings);

}  // namespace voxprint::pipeline
