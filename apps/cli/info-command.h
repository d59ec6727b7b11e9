#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace voxprint::cli {

// `voxprint info`: what the model file is and where it runs.
CLI::App* AddInfoCommand(CLI::App& root, std::function<int()>& run);

}  // namespace voxprint::cli
