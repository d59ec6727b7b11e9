// Pieces every `voxprint` subcommand shares: model/device flags, exit codes.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "voxprint/error.h"
#include "voxprint/extractor.h"

namespace voxprint::cli {

// Documented exit codes (README, `voxprint --help`).
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,  // a bug in voxprint
  kExitUsage = 2,     // bad flags or parameter values
  kExitBadAudio = 3,  // input not audio, undecodable or too short
  kExitModel = 4,     // model file missing, corrupt or unsafe
  kExitDevice = 5,    // requested device unavailable
  kExitLimit = 6,     // input beyond a limit
  kExitIo = 7,        // file cannot be read or written
  kExitCancelled = 130,  // stopped by SIGINT/SIGTERM (128 + SIGINT)
};
int ExitCodeFor(ErrorCode code);

// Flags that choose and run the model: --model, --device, --threads,
// --precision.
struct ModelFlags {
  std::string model_path;
  std::string device = "auto";
  int threads = 0;
  std::string precision = "fp32";
  void AddTo(CLI::App& command);
  // Resolves the model file (flag, $VOXPRINT_MODEL, cache, download) and
  // loads it. Logs the device choice on stderr. `jobs` inputs may run at
  // once; they share the --threads budget (each gets threads / jobs, at
  // least one). The model file's SHA-256 is computed only when asked for
  // (`info` shows it; the others start faster without it).
  std::unique_ptr<Extractor> MakeExtractor(bool quiet, int jobs = 1,
                                           bool model_checksum = false) const;
};

// Prints "voxprint: error: <message>" on stderr.
void PrintError(const std::string& message);

}  // namespace voxprint::cli
