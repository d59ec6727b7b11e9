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
  kExitInternal = 1,     // a bug in voxprint
  kExitUsage = 2,        // bad flags or parameter values
  kExitBadAudio = 3,     // input not audio, undecodable or too short
  kExitModel = 4,        // model file missing, corrupt or unsafe
  kExitDevice = 5,       // requested device unavailable
  kExitLimit = 6,        // input beyond a limit
  kExitIo = 7,           // file cannot be read or written
  kExitNotFound = 8,     // unknown speaker name
  kExitCancelled = 130,  // stopped by SIGINT/SIGTERM (128 + SIGINT)
};
int ExitCodeFor(ErrorCode code);

// Flags that choose and run the model: --model, --device, --threads,
// --precision.
struct ModelFlags {
  std::string model_path;
  std::string device = "auto";
  int threads = 0;  // 0..kMaxThreads
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

// `text` on one printable line: control characters and bytes that are not
// UTF-8 escaped (\n, \r, \t, \x1b, \xff...) and backslashes doubled, so
// that a file name can neither end a line early nor send escape sequences
// to the terminal. Valid UTF-8 text passes as it is.
std::string Printable(const std::string& text);

// Prints "voxprint: error: <message>" on stderr, as one Printable line.
void PrintError(const std::string& message);

// Prints "voxprint: warning: <input>: <message>" on stderr for each warning.
void PrintWarnings(const std::string& input,
                   const std::vector<ResultWarning>& warnings);

// Installs SIGINT/SIGTERM handlers for a long command and returns the token
// they cancel: the first signal cancels the job (the command ends at its
// next check with kCancelled: one line, exit 130); a second ends the
// process at once (exit 130).
CancelToken CancelOnInterrupt();

}  // namespace voxprint::cli
