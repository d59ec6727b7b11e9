#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace voxprint::cli {

// `voxprint compare A B`: cosine similarity of two whole-file embeddings.
CLI::App* AddCompareCommand(CLI::App& root, std::function<int()>& run);

}  // namespace voxprint::cli
