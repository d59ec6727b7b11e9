#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace voxprint::cli {

// `voxprint vad`: speech segments of audio files (Silero VAD v5).
CLI::App* AddVadCommand(CLI::App& root, std::function<int()>& run);

}  // namespace voxprint::cli
