#include "compare-command.h"

#include <iostream>
#include <memory>

#include "cli-common.h"
#include "common/result-json.h"

namespace voxprint::cli {

namespace {

struct CompareFlags {
  ModelFlags model;
  double threshold = kDefaultSameSpeakerThreshold;
  std::string a, b;
};

int RunCompare(const CompareFlags& flags) {
  apps::ValidateThreshold(flags.threshold);  // CLI::Range lets NaN through
  const std::unique_ptr<Extractor> extractor = flags.model.MakeExtractor(false);
  EmbedRequest request;
  request.cancel = CancelOnInterrupt();
  const EmbeddingResult a = extractor->EmbedFile(flags.a, request);
  const EmbeddingResult b = extractor->EmbedFile(flags.b, request);
  nlohmann::json json = apps::ComparisonToJson(
      CosineSimilarity(a.embedding, b.embedding), flags.threshold);
  json["a"] = flags.a;
  json["b"] = flags.b;
  json["duration_a_s"] = a.duration_s;
  json["duration_b_s"] = b.duration_s;
  json["warnings_a"] = apps::WarningsToJson(a.warnings);
  json["warnings_b"] = apps::WarningsToJson(b.warnings);
  PrintWarnings(flags.a, a.warnings);
  PrintWarnings(flags.b, b.warnings);
  std::cout << apps::DumpJson(json) << std::endl;
  return kExitOk;
}

}  // namespace

CLI::App* AddCompareCommand(CLI::App& root, std::function<int()>& run) {
  auto flags = std::make_shared<CompareFlags>();
  CLI::App* command = root.add_subcommand(
      "compare",
      "Are two recordings the same speaker? Prints JSON {similarity, "
      "threshold, same_speaker} (same_speaker: similarity > threshold).");
  flags->model.AddTo(*command);
  command
      ->add_option("--threshold", flags->threshold,
                   "Cosine similarity above which it is the same speaker")
      ->check(CLI::Range(-1.0, 1.0))
      ->capture_default_str();
  command->add_option("a", flags->a, "First audio file")->required();
  command->add_option("b", flags->b, "Second audio file")->required();
  command->callback(
      [flags, &run] { run = [flags] { return RunCompare(*flags); }; });
  return command;
}

}  // namespace voxprint::cli
