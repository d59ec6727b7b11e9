// voxprint: speaker embeddings from the command line.
#include <CLI/CLI.hpp>
#include <exception>
#include <functional>
#include <iostream>

#include "cli-common.h"
#include "compare-command.h"
#include "der-command.h"
#include "diarize-command.h"
#include "embed-command.h"
#include "info-command.h"
#include "speakers-command.h"
#include "vad-command.h"
#include "version-info.h"
#include "voxprint/backend.h"
#if VOXPRINT_HAVE_SERVER
#include "serve-command.h"
#endif

namespace {

// What `voxprint --version` prints: enough to tell two builds apart in a bug
// report (the oneDNN build and the ISA it picked decide the CPU speed).
std::string VersionText() {
  std::string onednn;
  try {
    onednn = voxprint::CreateBackend("cpu")->Info().description;
  } catch (const std::exception& error) {
    onednn = std::string("oneDNN unavailable: ") + error.what();
  }
  return std::string("voxprint ") + VOXPRINT_VERSION + " (commit " +
         VOXPRINT_COMMIT + ")\n" + onednn +
         "\nCUDA backend: " + VOXPRINT_CUDA_SUPPORT;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace voxprint::cli;
  CLI::App app(
      "voxprint: WeSpeaker ResNet34-LM speaker embeddings, the numbers "
      "pyannote.audio gives, from one binary.\n\n"
      "Exit codes: 0 ok, 1 internal error, 2 bad usage or parameters, 3 bad "
      "audio input, 4 model file problem, 5 device unavailable, 6 input over "
      "a limit, 7 file read/write error, 8 unknown speaker name, 130 "
      "interrupted (SIGINT/SIGTERM).",
      "voxprint");
  app.require_subcommand(1);
  app.set_version_flag("--version", VersionText,
                       "Print the version, commit, oneDNN version and ISA, "
                       "and whether CUDA support is built in");
  std::function<int()> run;
  AddEmbedCommand(app, run);
  AddCompareCommand(app, run);
  AddInfoCommand(app, run);
  AddVadCommand(app, run);
  AddDiarizeCommand(app, run);
  AddDerCommand(app, run);
  AddSpeakersCommands(app, run);
  AddEvalCommand(app, run);
#if VOXPRINT_HAVE_SERVER
  voxprint::cli::AddServeCommand(app, run);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version: CLI11 prints them. A real parse error quotes the
    // user's words (an option's value may hold anything): one printable line.
    if (error.get_exit_code() == 0) return app.exit(error);
    PrintError(std::string(error.what()) + " (see voxprint --help)");
    return kExitUsage;
  }
  try {
    return run ? run() : kExitUsage;
  } catch (const voxprint::Error& error) {
    PrintError(error.what());
    return ExitCodeFor(error.code());
  } catch (const std::exception& error) {
    PrintError(std::string("internal error: ") + error.what());
    return kExitInternal;
  }
}
