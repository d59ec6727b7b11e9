// Voiceprints, AS-Norm and the evaluation of scored trials.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "voxprint/error.h"
#include "voxprint/speakers.h"

namespace voxprint {

namespace {

// Sum of squares in double; kInvalidArgument for NaN/Inf.
double SquaredNorm(std::span<const float> v, const char* what) {
  double sum = 0.0;
  for (const float x : v) {
    if (!std::isfinite(x))
      throw Error(ErrorCode::kInvalidArgument,
                  std::string(what) + " holds NaN or infinite values");
    sum += static_cast<double>(x) * x;
  }
  return sum;
}

}  // namespace

std::vector<float> MakeVoiceprint(
    std::span<const std::vector<float>> embeddings) {
  if (embeddings.empty())
    throw Error(ErrorCode::kInvalidArgument,
                "a voiceprint needs at least one embedding");
  const size_t dim = embeddings[0].size();
  std::vector<double> sum(dim, 0.0);
  for (const auto& embedding : embeddings) {
    if (embedding.size() != dim || dim == 0)
      throw Error(ErrorCode::kInvalidArgument,
                  "embeddings of a voiceprint differ in size (" +
                      std::to_string(dim) + " and " +
                      std::to_string(embedding.size()) + ")");
    const double norm = std::sqrt(SquaredNorm(embedding, "an embedding"));
    if (norm == 0.0)
      throw Error(ErrorCode::kInvalidArgument,
                  "an embedding is all zeros: it has no direction");
    for (size_t i = 0; i < dim; ++i) sum[i] += embedding[i] / norm;
  }
  double norm = 0.0;
  for (const double x : sum) norm += x * x;
  norm = std::sqrt(norm);
  if (norm == 0.0)
    throw Error(ErrorCode::kInvalidArgument,
                "the embeddings cancel out: their mean is zero");
  std::vector<float> voiceprint(dim);
  for (size_t i = 0; i < dim; ++i)
    voiceprint[i] = static_cast<float>(sum[i] / norm);
  return voiceprint;
}

AsNorm::AsNorm(std::vector<float> cohort, int dim, int top_n)
    : dim_(dim), top_n_(top_n) {
  if (dim < 1 || top_n < 1)
    throw Error(ErrorCode::kInvalidArgument,
                "AS-Norm needs dim >= 1 and top_n >= 1");
  if (cohort.size() % static_cast<size_t>(dim) != 0)
    throw Error(ErrorCode::kInvalidArgument,
                "cohort of " + std::to_string(cohort.size()) +
                    " values is not rows of " + std::to_string(dim));
  rows_ = static_cast<int>(cohort.size() / dim);
  if (rows_ < 2)
    throw Error(ErrorCode::kInvalidArgument,
                "an AS-Norm cohort needs at least 2 embeddings, got " +
                    std::to_string(rows_));
  SquaredNorm(cohort, "the cohort");
  std::vector<double> mean(dim, 0.0);
  for (int r = 0; r < rows_; ++r)
    for (int i = 0; i < dim; ++i) mean[i] += cohort[size_t(r) * dim + i];
  mean_.resize(dim);
  for (int i = 0; i < dim; ++i) mean_[i] = static_cast<float>(mean[i] / rows_);
  cohort_.resize(cohort.size());
  for (int r = 0; r < rows_; ++r) {
    const std::vector<float> row =
        Centre(std::span<const float>(cohort).subspan(size_t(r) * dim, dim));
    std::copy(row.begin(), row.end(), cohort_.begin() + size_t(r) * dim);
  }
}

std::vector<float> AsNorm::Centre(std::span<const float> embedding) const {
  if (embedding.size() != static_cast<size_t>(dim_))
    throw Error(ErrorCode::kInvalidArgument,
                "embedding of size " + std::to_string(embedding.size()) +
                    " against a cohort of size " + std::to_string(dim_));
  std::vector<double> centred(dim_);
  double norm = 0.0;
  for (int i = 0; i < dim_; ++i) {
    centred[i] = static_cast<double>(embedding[i]) - mean_[i];
    norm += centred[i] * centred[i];
  }
  if (!std::isfinite(norm))
    throw Error(ErrorCode::kInvalidArgument,
                "an embedding holds NaN or infinite values");
  norm = std::sqrt(norm);
  std::vector<float> out(dim_, 0.0f);
  if (norm > 0.0)
    for (int i = 0; i < dim_; ++i)
      out[i] = static_cast<float>(centred[i] / norm);
  return out;
}

AsNorm::Stats AsNorm::CohortStats(std::span<const float> centred) const {
  std::vector<double> scores(rows_);
  for (int r = 0; r < rows_; ++r) {
    const float* row = cohort_.data() + size_t(r) * dim_;
    double dot = 0.0;
    for (int i = 0; i < dim_; ++i)
      dot += static_cast<double>(row[i]) * centred[i];
    scores[r] = dot;
  }
  const size_t n = std::min<size_t>(top_n_, scores.size());
  std::partial_sort(scores.begin(), scores.begin() + n, scores.end(),
                    std::greater<>());
  Stats stats;
  for (size_t i = 0; i < n; ++i) stats.mean += scores[i];
  stats.mean /= n;
  for (size_t i = 0; i < n; ++i)
    stats.sd += (scores[i] - stats.mean) * (scores[i] - stats.mean);
  stats.sd = std::sqrt(stats.sd / n);  // population sd, as numpy's std
  return stats;
}

double AsNorm::Score(std::span<const float> enrollment,
                     std::span<const float> test) const {
  const std::vector<float> e = Centre(enrollment);
  const std::vector<float> t = Centre(test);
  double s = 0.0;
  for (int i = 0; i < dim_; ++i) s += static_cast<double>(e[i]) * t[i];
  const Stats se = CohortStats(e);
  const Stats st = CohortStats(t);
  // A cohort whose top scores are all equal gives sd 0: no scale to use.
  const double kTiny = 1e-12;
  return 0.5 * ((s - se.mean) / std::max(se.sd, kTiny) +
                (s - st.mean) / std::max(st.sd, kTiny));
}

Evaluation EvaluateTrials(std::span<const TrialScore> trials, double p_target,
                          double far) {
  if (!(p_target > 0.0 && p_target < 1.0))
    throw Error(ErrorCode::kInvalidArgument,
                "p_target must be in (0, 1), got " + std::to_string(p_target));
  if (!(far > 0.0 && far < 1.0))
    throw Error(
        ErrorCode::kInvalidArgument,
        "the false-accept rate must be in (0, 1), got " + std::to_string(far));
  Evaluation result;
  result.p_target = p_target;
  result.far = far;
  for (const TrialScore& trial : trials) {
    if (!std::isfinite(trial.score))
      throw Error(ErrorCode::kInvalidArgument,
                  "a trial's score is NaN or infinite");
    (trial.target ? result.targets : result.nontargets) += 1;
  }
  if (result.targets == 0 || result.nontargets == 0)
    throw Error(ErrorCode::kInvalidArgument,
                "evaluation needs target and non-target trials (got " +
                    std::to_string(result.targets) + " targets, " +
                    std::to_string(result.nontargets) + " non-targets)");
  // As WeSpeaker's compute_pmiss_pfa_rbst: sort by score (stable), then the
  // false-reject rate at position i counts targets at or below it and the
  // false-accept rate non-targets above it.
  std::vector<size_t> order(trials.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return trials[a].score < trials[b].score;
  });
  const size_t n = order.size();
  std::vector<double> fnr(n), fpr(n), threshold(n);
  size_t targets_below = 0, nontargets_below = 0;
  for (size_t i = 0; i < n; ++i) {
    const TrialScore& trial = trials[order[i]];
    (trial.target ? targets_below : nontargets_below) += 1;
    fnr[i] = static_cast<double>(targets_below) / result.targets;
    fpr[i] = 1.0 - static_cast<double>(nontargets_below) / result.nontargets;
    threshold[i] = trial.score;
  }
  // EER: where fnr - fpr changes sign, interpolated (compute_eer).
  size_t x1 = n;
  for (size_t i = 0; i < n; ++i)
    if (fnr[i] - fpr[i] >= 0) {
      x1 = i;
      break;
    }
  if (x1 == 0 || x1 == n) {
    // No crossing inside the list: the rates meet at an end.
    const size_t at = x1 == n ? n - 1 : 0;
    result.eer = (fnr[at] + fpr[at]) / 2;
    result.eer_threshold = threshold[at];
  } else {
    const size_t x2 = x1 - 1;
    const double a =
        (fnr[x1] - fpr[x1]) / (fpr[x2] - fpr[x1] - (fnr[x2] - fnr[x1]));
    result.eer = fnr[x1] + a * (fnr[x2] - fnr[x1]);
    result.eer_threshold = threshold[x1];
  }
  // minDCF, normalised by the cost of the best trivial system.
  double min_cost = INFINITY;
  for (size_t i = 0; i < n; ++i) {
    const double cost = fnr[i] * p_target + fpr[i] * (1.0 - p_target);
    if (cost < min_cost) {
      min_cost = cost;
      result.min_dcf_threshold = threshold[i];
    }
  }
  result.min_dcf = min_cost / std::min(p_target, 1.0 - p_target);
  // The lowest threshold whose false-accept rate is at most `far`.
  for (size_t i = 0; i < n; ++i)
    if (fpr[i] <= far) {
      result.threshold_at_far = threshold[i];
      result.false_reject_at_far = fnr[i];
      break;
    }
  result.det.resize(n);
  for (size_t i = 0; i < n; ++i) result.det[i] = {threshold[i], fnr[i], fpr[i]};
  return result;
}

namespace {

std::vector<std::string> Fields(const std::string& line) {
  std::istringstream stream(line);
  std::vector<std::string> fields;
  std::string field;
  while (stream >> field) fields.push_back(field);
  return fields;
}

bool ParseScore(const std::string& text, double& score) {
  size_t used = 0;
  try {
    score = std::stod(text, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == text.size() && std::isfinite(score);
}

}  // namespace

std::vector<Trial> ParseTrials(const std::string& text,
                               const std::string& name) {
  std::vector<Trial> trials;
  std::istringstream lines(text);
  std::string line;
  size_t number = 0;
  while (std::getline(lines, line)) {
    ++number;
    const std::vector<std::string> f = Fields(line);
    if (f.empty() || f[0][0] == '#') continue;
    const auto bad = [&](const std::string& why) {
      return Error(ErrorCode::kInvalidArgument,
                   name + ":" + std::to_string(number) + ": " + why +
                       " (expected \"1 a.wav b.wav [score]\" or \"enrol test "
                       "[score] target|nontarget\")");
    };
    if (f.size() != 3 && f.size() != 4) throw bad("not 3 or 4 fields");
    Trial trial;
    const std::string& last = f.back();
    if (last == "target" || last == "nontarget") {
      trial.enrollment = f[0];
      trial.test = f[1];
      trial.target = last == "target";
      if (f.size() == 4) {
        double score;
        if (!ParseScore(f[2], score)) throw bad("score is not a number");
        trial.score = score;
      }
    } else if (f[0] == "0" || f[0] == "1") {
      trial.target = f[0] == "1";
      trial.enrollment = f[1];
      trial.test = f[2];
      if (f.size() == 4) {
        double score;
        if (!ParseScore(f[3], score)) throw bad("score is not a number");
        trial.score = score;
      }
    } else {
      throw bad("no label (a leading 0/1 or a trailing target/nontarget)");
    }
    trials.push_back(std::move(trial));
  }
  if (trials.empty())
    throw Error(ErrorCode::kInvalidArgument, name + ": no trials");
  for (const Trial& trial : trials)
    if (trial.score.has_value() != trials[0].score.has_value())
      throw Error(ErrorCode::kInvalidArgument,
                  name + ": some trials have scores and others do not");
  return trials;
}

}  // namespace voxprint
