#include "speakers/voiceprint-index.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

#include "voxprint/error.h"

namespace voxprint {

namespace {

std::vector<float> Normalised(std::span<const float> v) {
  double norm = 0.0;
  for (const float x : v) norm += static_cast<double>(x) * x;
  norm = std::sqrt(norm);
  std::vector<float> out(v.begin(), v.end());
  if (norm > 0.0)
    for (float& x : out) x = static_cast<float>(x / norm);
  return out;
}

// Eight running sums, so that the compiler may use SIMD lanes without
// reordering one sum (no -ffast-math needed).
float Dot(const float* a, const float* b, int dim) {
  float lanes[8] = {};
  int i = 0;
  for (; i + 8 <= dim; i += 8)
    for (int j = 0; j < 8; ++j) lanes[j] += a[i + j] * b[i + j];
  float sum = 0.0f;
  for (; i < dim; ++i) sum += a[i] * b[i];
  for (const float lane : lanes) sum += lane;
  return sum;
}

void CheckThreshold(double threshold, bool as_norm) {
  if (!std::isfinite(threshold) ||
      (!as_norm && (threshold < -1.0 || threshold > 1.0)))
    throw Error(ErrorCode::kInvalidArgument,
                "threshold must be " +
                    std::string(as_norm ? "a finite number"
                                        : "in [-1, 1] (raw cosine)") +
                    ", got " + std::to_string(threshold));
}

}  // namespace

VoiceprintIndex::VoiceprintIndex(VoiceprintIndex&& other) noexcept
    : dim_(other.dim_),
      names_(std::move(other.names_)),
      matrix_(std::move(other.matrix_)),
      rows_(std::move(other.rows_)) {}

void VoiceprintIndex::Reserve(size_t speakers) {
  std::unique_lock lock(mutex_);
  names_.reserve(speakers);
  matrix_.reserve(speakers * dim_);
  rows_.reserve(speakers);
}

void VoiceprintIndex::Set(const std::string& name,
                          std::vector<float> voiceprint) {
  VOXPRINT_CHECK(voiceprint.size() == static_cast<size_t>(dim_),
                 "voiceprint size");
  std::unique_lock lock(mutex_);
  const auto found = rows_.find(name);
  if (found != rows_.end()) {
    std::copy(voiceprint.begin(), voiceprint.end(),
              matrix_.begin() + found->second * dim_);
    return;
  }
  rows_.emplace(name, names_.size());
  names_.push_back(name);
  matrix_.insert(matrix_.end(), voiceprint.begin(), voiceprint.end());
}

void VoiceprintIndex::Remove(const std::string& name) {
  std::unique_lock lock(mutex_);
  const auto found = rows_.find(name);
  if (found == rows_.end()) return;
  // The last row moves into the hole.
  const size_t row = found->second, last = names_.size() - 1;
  rows_.erase(found);
  if (row != last) {
    std::copy(matrix_.begin() + last * dim_,
              matrix_.begin() + (last + 1) * dim_,
              matrix_.begin() + row * dim_);
    names_[row] = std::move(names_[last]);
    rows_[names_[row]] = row;
  }
  names_.pop_back();
  matrix_.resize(names_.size() * dim_);
}

void VoiceprintIndex::Rename(const std::string& old_name,
                             const std::string& new_name) {
  std::unique_lock lock(mutex_);
  const auto found = rows_.find(old_name);
  if (found == rows_.end() || old_name == new_name) return;
  const size_t row = found->second;
  rows_.erase(found);
  rows_[new_name] = row;
  names_[row] = new_name;
}

void VoiceprintIndex::Replace(VoiceprintIndex&& other) {
  std::unique_lock lock(mutex_);
  dim_ = other.dim_;
  names_ = std::move(other.names_);
  matrix_ = std::move(other.matrix_);
  rows_ = std::move(other.rows_);
}

size_t VoiceprintIndex::Size() const {
  std::shared_lock lock(mutex_);
  return names_.size();
}

Identification VoiceprintIndex::Identify(std::span<const float> query,
                                         int top_k, double threshold,
                                         const AsNorm* cohort) const {
  if (top_k < 1)
    throw Error(ErrorCode::kInvalidArgument,
                "top-k must be at least 1, got " + std::to_string(top_k));
  CheckThreshold(threshold, cohort != nullptr);
  Identification result;
  result.threshold = threshold;
  result.as_norm = cohort != nullptr;
  std::vector<double> scores;
  std::vector<std::string> names;
  {
    std::shared_lock lock(mutex_);
    const size_t count = names_.size();
    scores.resize(count);
    if (cohort) {
      const std::vector<float> test = cohort->Centre(query);
      const AsNorm::Stats test_stats = cohort->CohortStats(test);
      for (size_t row = 0; row < count; ++row) {
        const std::vector<float> enrolled = cohort->Centre(
            std::span<const float>(matrix_).subspan(row * dim_, dim_));
        const AsNorm::Stats stats = cohort->CohortStats(enrolled);
        double s = 0.0;
        for (int i = 0; i < dim_; ++i)
          s += static_cast<double>(enrolled[i]) * test[i];
        scores[row] =
            0.5 * ((s - stats.mean) / std::max(stats.sd, 1e-12) +
                   (s - test_stats.mean) / std::max(test_stats.sd, 1e-12));
      }
    } else {
      const std::vector<float> unit = Normalised(query);
      for (size_t row = 0; row < count; ++row)
        scores[row] = Dot(matrix_.data() + row * dim_, unit.data(), dim_);
    }
    // The k best in a heap whose top is the worst kept: one pass.
    const size_t k = std::min<size_t>(top_k, count);
    const auto better = [&](size_t a, size_t b) {
      return scores[a] > scores[b] ||
             (scores[a] == scores[b] && names_[a] < names_[b]);
    };
    std::vector<size_t> best;
    best.reserve(k + 1);
    for (size_t row = 0; row < count; ++row) {
      if (best.size() == k && !better(row, best.front())) continue;
      best.push_back(row);
      std::push_heap(best.begin(), best.end(), better);
      if (best.size() > k) {
        std::pop_heap(best.begin(), best.end(), better);
        best.pop_back();
      }
    }
    std::sort(best.begin(), best.end(), better);
    for (const size_t row : best)
      result.candidates.push_back({names_[row], scores[row]});
  }
  if (!result.candidates.empty() && result.candidates[0].score > threshold) {
    result.speaker = result.candidates[0].name;
    result.unknown = false;
  }
  return result;
}

Verification VoiceprintIndex::Verify(const std::string& name,
                                     std::span<const float> query,
                                     double threshold,
                                     const AsNorm* cohort) const {
  CheckThreshold(threshold, cohort != nullptr);
  Verification result;
  result.name = name;
  result.threshold = threshold;
  result.as_norm = cohort != nullptr;
  std::vector<float> voiceprint;
  {
    std::shared_lock lock(mutex_);
    const auto found = rows_.find(name);
    if (found == rows_.end())
      throw Error(ErrorCode::kNotFound, "no speaker named \"" + name + "\"");
    voiceprint.assign(matrix_.begin() + found->second * dim_,
                      matrix_.begin() + (found->second + 1) * dim_);
  }
  if (cohort) {
    result.score = cohort->Score(voiceprint, query);
  } else {
    const std::vector<float> unit = Normalised(query);
    double dot = 0.0;
    for (int i = 0; i < dim_; ++i)
      dot += static_cast<double>(voiceprint[i]) * unit[i];
    result.score = dot;
  }
  result.accepted = result.score > threshold;
  return result;
}

}  // namespace voxprint
