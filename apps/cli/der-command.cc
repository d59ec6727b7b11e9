#include "der-command.h"

#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli-common.h"
#include "common/result-json.h"
#include "output-writers.h"
#include "voxprint/der.h"

namespace voxprint::cli {
namespace {

struct DerFlags {
  std::string reference;
  std::string hypothesis;
  double collar = 0.0;
  std::string convention = "pyannote";
  std::string format = "text";
};

std::string Percent(double part, double total) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f %%",
                total > 0 ? 100.0 * part / total : 0.0);
  return text;
}

std::string Seconds(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f s", value);
  return text;
}

int RunDer(const DerFlags& flags) {
  DerOptions options;
  options.collar = flags.collar;
  options.convention = flags.convention == "md-eval"
                           ? CollarConvention::kMdEval
                           : CollarConvention::kPyannote;
  options.Validate();
  // Read in order, so that an error names the first bad file.
  const std::vector<RttmTurn> reference = ReadRttmFile(flags.reference);
  const std::vector<RttmTurn> hypothesis = ReadRttmFile(flags.hypothesis);
  const DerResult result = ComputeDer(reference, hypothesis, options);
  if (flags.format == "json") {
    nlohmann::json mapping = nlohmann::json::array();
    for (const DerResult::Pair& pair : result.mapping)
      mapping.push_back({{"uri", pair.uri},
                         {"reference", pair.reference},
                         {"hypothesis", pair.hypothesis}});
    nlohmann::json out = {
        {"reference", flags.reference},
        {"hypothesis", flags.hypothesis},
        {"der", std::isfinite(result.der) ? nlohmann::json(result.der)
                                          : nlohmann::json(nullptr)},
        {"total_s", result.total_s},
        {"missed_s", result.missed_s},
        {"false_alarm_s", result.false_alarm_s},
        {"confusion_s", result.confusion_s},
        {"correct_s", result.correct_s},
        {"collar_s", flags.collar},
        {"collar_convention", flags.convention},
        {"scoring", options.Describe()},
        {"uris", result.uris},
        {"mapping", mapping}};
    std::cout << apps::DumpJson(out) << std::endl;
    return kExitOk;
  }
  std::string text;
  text += "DER " +
          (std::isfinite(result.der) ? Percent(result.der, 1.0)
                                     : std::string("inf (empty reference)")) +
          "\n";
  text += "  missed speech " + Percent(result.missed_s, result.total_s) + " (" +
          Seconds(result.missed_s) + ")\n";
  text += "  false alarm   " + Percent(result.false_alarm_s, result.total_s) +
          " (" + Seconds(result.false_alarm_s) + ")\n";
  text += "  confusion     " + Percent(result.confusion_s, result.total_s) +
          " (" + Seconds(result.confusion_s) + ")\n";
  text += "  reference speech " + Seconds(result.total_s) + " in " +
          std::to_string(result.uris.size()) + " file(s)\n";
  text += "  " + options.Describe() + "\n";
  for (const DerResult::Pair& pair : result.mapping)
    text += "  " + Printable(pair.uri) + ": " + Printable(pair.reference) +
            " -> " + Printable(pair.hypothesis) + "\n";
  std::cout << text << std::flush;
  return kExitOk;
}

}  // namespace

CLI::App* AddDerCommand(CLI::App& root, std::function<int()>& run) {
  auto flags = std::make_shared<DerFlags>();
  CLI::App* command = root.add_subcommand(
      "der",
      "Diarization error rate of HYP.rttm against REF.rttm: missed speech, "
      "false alarm and speaker confusion over the reference's speech, with "
      "the optimal one-to-one speaker mapping (Hungarian), file by file "
      "(RTTM uri), overlap scored.\n"
      "Collars: pyannote.metrics' collar is the total width around each "
      "reference boundary (--collar 0.5 removes +-0.25 s); md-eval's -c is "
      "each side (--collar 0.25 --collar-convention md-eval removes the "
      "same). The output says which was used.");
  command->add_option("reference", flags->reference, "Reference RTTM")
      ->required();
  command->add_option("hypothesis", flags->hypothesis, "Hypothesis RTTM")
      ->required();
  command->add_option("--collar", flags->collar, "Collar, seconds")
      ->capture_default_str();
  command
      ->add_option("--collar-convention", flags->convention,
                   "pyannote (total width) or md-eval (each side)")
      ->check(CLI::IsMember({"pyannote", "md-eval"}))
      ->capture_default_str();
  command->add_option("--format", flags->format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  command->callback(
      [flags, &run] { run = [flags] { return RunDer(*flags); }; });
  return command;
}

}  // namespace voxprint::cli
