// voxprint: speaker embeddings from the command line.
#include <CLI/CLI.hpp>
#include <exception>
#include <functional>
#include <iostream>

#include "cli-common.h"
#include "compare-command.h"
#include "embed-command.h"
#include "info-command.h"
#include "vad-command.h"
#if VOXPRINT_HAVE_SERVER
#include "serve-command.h"
#endif

int main(int argc, char** argv) {
  using namespace voxprint::cli;
  CLI::App app(
      "voxprint: WeSpeaker ResNet34-LM speaker embeddings, the numbers "
      "pyannote.audio gives, from one binary.\n\n"
      "Exit codes: 0 ok, 1 internal error, 2 bad usage or parameters, 3 bad "
      "audio input, 4 model file problem, 5 device unavailable, 6 input over "
      "a limit, 7 file read/write error.",
      "voxprint");
  app.require_subcommand(1);
  app.set_version_flag("--version", "voxprint 0.1.0");
  std::function<int()> run;
  AddEmbedCommand(app, run);
  AddCompareCommand(app, run);
  AddInfoCommand(app, run);
  AddVadCommand(app, run);
#if VOXPRINT_HAVE_SERVER
  voxprint::cli::AddServeCommand(app, run);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    return code == 0 ? kExitOk : kExitUsage;
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
