#include "info-command.h"

#include <iostream>
#include <memory>

#include "cli-common.h"
#include "common/result-json.h"

namespace voxprint::cli {

CLI::App* AddInfoCommand(CLI::App& root, std::function<int()>& run) {
  auto flags = std::make_shared<ModelFlags>();
  CLI::App* command = root.add_subcommand(
      "info",
      "Model architecture, parameter count, embedding size, sample rate, "
      "feature settings, file format, SHA-256 and device, as JSON.");
  flags->AddTo(*command);
  command->callback([flags, &run] {
    run = [flags] {
      const std::unique_ptr<Extractor> extractor = flags->MakeExtractor(true, 1, /*model_checksum=*/true);
      std::cout << apps::DumpJson(apps::ModelInfoToJson(*extractor))
                << std::endl;
      return kExitOk;
    };
  });
  return command;
}

}  // namespace voxprint::cli
