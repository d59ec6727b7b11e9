#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace voxprint::cli {

// `voxprint embed`: adds the subcommand; `run` is set to its action.
CLI::App* AddEmbedCommand(CLI::App& root, std::function<int()>& run);

}  // namespace voxprint::cli
