// `voxprint eval TRIALS`: how well scores separate targets from non-targets,
// and the thresholds that follow (EER, minDCF, a chosen false-accept rate).
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "cli-common.h"
#include "common/result-json.h"
#include "common/speakers-json.h"
#include "speakers-command.h"
#include "voxprint/speakers.h"

namespace voxprint::cli {

namespace {

struct EvalFlags {
  ModelFlags model;
  std::string trials;
  std::string audio_dir;
  std::string cohort;
  std::string det;
  double p_target = 0.01;
  double far = 0.01;
};

std::string ReadTrials(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(ErrorCode::kIoError,
                path + ": cannot open: " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(ErrorCode::kIoError, path + ": cannot read");
  return text;
}

int RunEval(const EvalFlags& flags) {
  std::vector<Trial> trials =
      ParseTrials(ReadTrials(flags.trials), flags.trials);
  bool as_norm = false;
  const bool scored_here = !trials[0].score;
  if (scored_here) {
    // Score the trials: every file embedded once, in batches.
    namespace fs = std::filesystem;
    const fs::path base = flags.audio_dir.empty()
                              ? fs::path(flags.trials).parent_path()
                              : fs::path(flags.audio_dir);
    std::map<std::string, size_t> index;
    std::vector<std::string> paths;
    for (const Trial& trial : trials)
      for (const std::string* name : {&trial.enrollment, &trial.test})
        if (index.emplace(*name, paths.size()).second)
          paths.push_back((base / *name).string());
    const auto extractor = flags.model.MakeExtractor(false);
    EmbedRequest request;
    request.cancel = CancelOnInterrupt();
    std::vector<std::vector<float>> embeddings(paths.size());
    extractor->EmbedFiles(
        paths, request, [&](size_t i, BatchOutcome&& outcome) {
          if (outcome.error) throw *outcome.error;
          embeddings[i] = std::move(outcome.result->embedding);
        });
    std::unique_ptr<AsNorm> cohort;
    if (!flags.cohort.empty()) {
      const NpyMatrix matrix = ReadNpyMatrix(flags.cohort);
      if (matrix.cols != extractor->EmbeddingDim())
        throw Error(ErrorCode::kInvalidArgument,
                    flags.cohort + ": cohort rows have " +
                        std::to_string(matrix.cols) + " values, not " +
                        std::to_string(extractor->EmbeddingDim()));
      cohort =
          std::make_unique<AsNorm>(matrix.values, extractor->EmbeddingDim());
      as_norm = true;
    }
    for (Trial& trial : trials) {
      const auto& e = embeddings[index[trial.enrollment]];
      const auto& t = embeddings[index[trial.test]];
      trial.score = cohort ? cohort->Score(e, t) : CosineSimilarity(e, t);
    }
  } else if (!flags.cohort.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                flags.trials +
                    ": the trials hold scores already; --cohort "
                    "applies only when eval computes them");
  }
  std::vector<TrialScore> scores;
  for (const Trial& trial : trials)
    scores.push_back({*trial.score, trial.target});
  const Evaluation result = EvaluateTrials(scores, flags.p_target, flags.far);
  if (!flags.det.empty()) {
    std::ofstream out(flags.det, std::ios::trunc);
    out.precision(9);
    out << "threshold,false_reject,false_accept\n";
    for (const DetPoint& p : result.det)
      out << p.threshold << ',' << p.false_reject << ',' << p.false_accept
          << '\n';
    if (!out.flush())
      throw Error(ErrorCode::kIoError, flags.det + ": cannot write");
  }
  nlohmann::json json = {
      {"trials", trials.size()},
      {"targets", result.targets},
      {"nontargets", result.nontargets},
      {"eer", result.eer},
      {"eer_percent", 100.0 * result.eer},
      {"eer_threshold", result.eer_threshold},
      {"min_dcf", result.min_dcf},
      {"min_dcf_threshold", result.min_dcf_threshold},
      {"p_target", result.p_target},
      {"c_miss", 1},
      {"c_fa", 1},
      {"far", result.far},
      {"threshold_at_far", result.threshold_at_far},
      {"false_reject_at_far", result.false_reject_at_far},
      {"score_scale", scored_here ? apps::ScoreScale(as_norm)
                                  : "as given in the trials file"}};
  if (!flags.det.empty()) json["det_csv"] = flags.det;
  std::cout << apps::DumpJson(json) << std::endl;
  return kExitOk;
}

}  // namespace

void AddEvalCommand(CLI::App& root, std::function<int()>& run) {
  auto flags = std::make_shared<EvalFlags>();
  CLI::App* c = root.add_subcommand(
      "eval",
      "Evaluate a trial list (VoxCeleb \"1 a.wav b.wav\" or WeSpeaker "
      "\"enrol test target|nontarget\", optionally with a score column): EER, "
      "minDCF (p_target 0.01, C_miss = C_fa = 1, normalised), the thresholds "
      "at the EER and at --far, and the DET curve (--det FILE, CSV). This is "
      "how to choose --threshold for identify and verify on your data.");
  flags->model.AddTo(*c);
  c->add_option("--audio-dir", flags->audio_dir,
                "Folder the trials' paths are relative to (default: the "
                "trials file's folder)");
  c->add_option("--cohort", flags->cohort,
                "AS-Norm cohort .npy: score with AS-Norm");
  c->add_option("--det", flags->det, "Write the DET points here (CSV)");
  c->add_option("--p-target", flags->p_target,
                "Prior of a target trial for minDCF")
      ->check(CLI::Range(1e-6, 0.999999))
      ->capture_default_str();
  c->add_option("--far", flags->far,
                "False-accept rate to give the threshold for")
      ->check(CLI::Range(1e-6, 0.999999))
      ->capture_default_str();
  c->add_option("trials", flags->trials, "Trial list")->required();
  c->callback([flags, &run] { run = [flags] { return RunEval(*flags); }; });
}

}  // namespace voxprint::cli
