#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace voxprint::cli {

// `voxprint der REF.rttm HYP.rttm`: diarization error rate.
CLI::App* AddDerCommand(CLI::App& root, std::function<int()>& run);

}  // namespace voxprint::cli
