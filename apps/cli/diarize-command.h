#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace voxprint::cli {

// `voxprint diarize`: who spoke when (VAD, windows, embeddings, clustering).
CLI::App* AddDiarizeCommand(CLI::App& root, std::function<int()>& run);

}  // namespace voxprint::cli
