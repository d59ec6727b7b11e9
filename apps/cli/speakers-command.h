#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace voxprint::cli {

// `voxprint speakers enroll|list|remove|rename|export|import|cohort build`,
// `voxprint identify FILE...` and `voxprint verify NAME FILE`: the speakers
// store (include/voxprint/speakers.h) from the command line.
void AddSpeakersCommands(CLI::App& root, std::function<int()>& run);

// `voxprint eval TRIALS`: EER, minDCF and thresholds from a trial list.
void AddEvalCommand(CLI::App& root, std::function<int()>& run);

}  // namespace voxprint::cli
