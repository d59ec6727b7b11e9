#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace voxprint::cli {

// `voxprint serve`: adds the subcommand; `run` is set to its action, which
// resolves the model file and runs the HTTP server until SIGINT/SIGTERM.
CLI::App* AddServeCommand(CLI::App& root, std::function<int()>& run);

}  // namespace voxprint::cli
