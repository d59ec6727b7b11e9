// RTTM parsing and the diarization error rate.
#include "voxprint/der.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "voxprint/error.h"

namespace voxprint {
namespace {

[[noreturn]] void Corrupt(const std::string& name, size_t line,
                          const std::string& reason) {
  throw Error(ErrorCode::kCorruptInput,
              name + ": line " + std::to_string(line) + ": " + reason);
}

// A whole field as a finite number in [0, max] (strtod on a bounded copy).
double TimeField(std::string_view field, const std::string& name, size_t line,
                 const char* what, double max) {
  const std::string text(field.substr(0, 64));
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (field.size() > 64 || end != text.c_str() + text.size() ||
      !std::isfinite(value) || value < 0.0 || value > max)
    Corrupt(name, line,
            std::string(what) + " must be a number from 0 to " +
                std::to_string(static_cast<int64_t>(max)) + " s");
  return value;
}

std::string SecondsText(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

}  // namespace

std::vector<RttmTurn> ParseRttm(std::string_view text, const std::string& name,
                                const RttmLimits& limits) {
  if (text.size() > limits.max_bytes)
    throw Error(
        ErrorCode::kResourceLimit,
        name + ": RTTM over " + std::to_string(limits.max_bytes) + " bytes");
  std::vector<RttmTurn> turns;
  size_t line_number = 0;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    ++line_number;
    if (line.size() > limits.max_line_bytes)
      Corrupt(
          name, line_number,
          "longer than " + std::to_string(limits.max_line_bytes) + " bytes");
    if (line.find('\0') != std::string_view::npos)
      Corrupt(name, line_number, "holds a NUL byte");
    std::vector<std::string_view> fields;
    for (size_t i = 0; i < line.size();) {
      while (i < line.size() &&
             std::isspace(static_cast<unsigned char>(line[i])))
        ++i;
      size_t j = i;
      while (j < line.size() &&
             !std::isspace(static_cast<unsigned char>(line[j])))
        ++j;
      if (j > i) fields.push_back(line.substr(i, j - i));
      i = j;
    }
    if (fields.empty() || fields[0].starts_with(";;") || fields[0] != "SPEAKER")
      continue;
    if (fields.size() < 8)
      Corrupt(name, line_number,
              "a SPEAKER line needs at least 8 fields, got " +
                  std::to_string(fields.size()));
    if (turns.size() >= limits.max_turns)
      throw Error(
          ErrorCode::kResourceLimit,
          name + ": more than " + std::to_string(limits.max_turns) + " turns");
    RttmTurn turn;
    turn.uri = std::string(fields[1]);
    turn.start_s =
        TimeField(fields[3], name, line_number, "start", limits.max_time_s);
    turn.duration_s =
        TimeField(fields[4], name, line_number, "duration", limits.max_time_s);
    turn.speaker = std::string(fields[7]);
    turns.push_back(std::move(turn));
  }
  return turns;
}

std::vector<RttmTurn> ReadRttmFile(const std::string& path,
                                   const RttmLimits& limits) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIoError, path + ": cannot open");
  std::string text;
  char buffer[65536];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(in.gcount()));
    if (text.size() > limits.max_bytes)
      throw Error(
          ErrorCode::kResourceLimit,
          path + ": RTTM over " + std::to_string(limits.max_bytes) + " bytes");
  }
  if (in.bad()) throw Error(ErrorCode::kIoError, path + ": read error");
  return ParseRttm(text, path, limits);
}

void DerOptions::Validate() const {
  if (!std::isfinite(collar) || collar < 0.0 || collar > 60.0)
    throw Error(ErrorCode::kInvalidArgument,
                "collar must be from 0 to 60 s, got " + std::to_string(collar));
}

std::string DerOptions::Describe() const {
  const double each_side =
      convention == CollarConvention::kPyannote ? collar / 2 : collar;
  const std::string side =
      "+-" + SecondsText(each_side) + " s around each reference boundary";
  if (convention == CollarConvention::kPyannote)
    return "collar " + SecondsText(collar) +
           " s total width (pyannote.metrics collar=" + SecondsText(collar) +
           ": " + side + "); overlap scored";
  return "collar " + SecondsText(collar) + " s each side (md-eval -c " +
         SecondsText(collar) + ": " + side + "); overlap scored";
}

std::vector<int> MaximumWeightAssignment(
    const std::vector<std::vector<double>>& weights) {
  const size_t rows = weights.size();
  const size_t cols = rows ? weights[0].size() : 0;
  const size_t n = std::max(rows, cols);
  std::vector<int> result(rows, -1);
  if (n == 0) return result;
  // Minimum cost on the square matrix of -weights (0 for padding), the
  // shortest augmenting path method with potentials; 1-based.
  auto cost = [&](size_t r, size_t c) {
    return r < rows && c < cols ? -weights[r][c] : 0.0;
  };
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0.0), v(n + 1, 0.0);
  std::vector<size_t> p(n + 1, 0), way(n + 1, 0);
  for (size_t i = 1; i <= n; ++i) {
    p[0] = i;
    size_t j0 = 0;
    std::vector<double> minv(n + 1, inf);
    std::vector<char> used(n + 1, 0);
    do {
      used[j0] = 1;
      const size_t i0 = p[j0];
      double delta = inf;
      size_t j1 = 0;
      for (size_t j = 1; j <= n; ++j) {
        if (used[j]) continue;
        const double current = cost(i0 - 1, j - 1) - u[i0] - v[j];
        if (current < minv[j]) {
          minv[j] = current;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (size_t j = 0; j <= n; ++j) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      const size_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  for (size_t j = 1; j <= n; ++j)
    if (p[j] >= 1 && p[j] <= rows && j <= cols)
      result[p[j] - 1] = static_cast<int>(j - 1);
  return result;
}

namespace {

struct FileScore {
  double total = 0, missed = 0, false_alarm = 0, confusion = 0, correct = 0;
  std::vector<DerResult::Pair> mapping;
};

FileScore ScoreFile(const std::string& uri,
                    const std::vector<const RttmTurn*>& reference,
                    const std::vector<const RttmTurn*>& hypothesis,
                    const DerOptions& options) {
  // Speakers by index.
  std::map<std::string, int> ref_ids, hyp_ids;
  for (const RttmTurn* turn : reference)
    ref_ids.emplace(turn->speaker, static_cast<int>(ref_ids.size()));
  for (const RttmTurn* turn : hypothesis)
    hyp_ids.emplace(turn->speaker, static_cast<int>(hyp_ids.size()));
  // Bounds on the work a hostile file can ask for: the mapping is a dense
  // speakers x speakers problem, the sweep visits each turn's intervals.
  constexpr size_t kMaxSpeakers = 1000;
  constexpr uint64_t kMaxWork = 100'000'000;
  if (ref_ids.size() > kMaxSpeakers || hyp_ids.size() > kMaxSpeakers)
    throw Error(ErrorCode::kResourceLimit, uri + ": more than " +
                                               std::to_string(kMaxSpeakers) +
                                               " speakers in one file");
  // Boundaries: every turn's ends, and the collar zones' ends.
  const double half = options.convention == CollarConvention::kPyannote
                          ? options.collar / 2
                          : options.collar;
  std::vector<std::pair<double, double>> zones;
  if (half > 0)
    for (const RttmTurn* turn : reference)
      for (double t : {turn->start_s, turn->start_s + turn->duration_s})
        zones.push_back({std::max(0.0, t - half), t + half});
  std::vector<double> times;
  for (const auto* side : {&reference, &hypothesis})
    for (const RttmTurn* turn : *side) {
      times.push_back(turn->start_s);
      times.push_back(turn->start_s + turn->duration_s);
    }
  for (const auto& [from, to] : zones) {
    times.push_back(from);
    times.push_back(to);
  }
  std::sort(times.begin(), times.end());
  times.erase(std::unique(times.begin(), times.end()), times.end());

  // Per elementary interval: who is active on each side (by sweeping the
  // sorted turn ends) and whether a collar covers it.
  const size_t intervals = times.empty() ? 0 : times.size() - 1;
  auto index_of = [&](double t) {
    return static_cast<size_t>(std::lower_bound(times.begin(), times.end(), t) -
                               times.begin());
  };
  uint64_t work = 0;
  for (const auto* side : {&reference, &hypothesis})
    for (const RttmTurn* turn : *side)
      work +=
          index_of(turn->start_s + turn->duration_s) - index_of(turn->start_s);
  for (const auto& [from, to] : zones) work += index_of(to) - index_of(from);
  if (work > kMaxWork)
    throw Error(ErrorCode::kResourceLimit,
                uri + ": too many overlapping turns to score (" +
                    std::to_string(work) + " turn-intervals, at most " +
                    std::to_string(kMaxWork) + ")");
  std::vector<std::vector<int>> ref_active(intervals), hyp_active(intervals);
  std::vector<char> excluded(intervals, 0);
  for (const RttmTurn* turn : reference)
    for (size_t k = index_of(turn->start_s);
         k < index_of(turn->start_s + turn->duration_s); ++k)
      ref_active[k].push_back(ref_ids[turn->speaker]);
  for (const RttmTurn* turn : hypothesis)
    for (size_t k = index_of(turn->start_s);
         k < index_of(turn->start_s + turn->duration_s); ++k)
      hyp_active[k].push_back(hyp_ids[turn->speaker]);
  for (const auto& [from, to] : zones)
    for (size_t k = index_of(from); k < index_of(to); ++k) excluded[k] = 1;

  // A speaker listed twice over the same time counts once (pyannote
  // scores an annotation's support per label).
  for (auto* lists : {&ref_active, &hyp_active})
    for (std::vector<int>& list : *lists) {
      std::sort(list.begin(), list.end());
      list.erase(std::unique(list.begin(), list.end()), list.end());
    }

  work = 0;
  for (size_t k = 0; k < intervals; ++k)
    work += static_cast<uint64_t>(ref_active[k].size()) * hyp_active[k].size();
  if (work > kMaxWork)
    throw Error(ErrorCode::kResourceLimit,
                uri + ": too many overlapping speakers to score");
  std::vector<std::vector<double>> cooccurrence(
      ref_ids.size(), std::vector<double>(hyp_ids.size(), 0.0));
  for (size_t k = 0; k < intervals; ++k) {
    if (excluded[k]) continue;
    const double d = times[k + 1] - times[k];
    for (int r : ref_active[k])
      for (int h : hyp_active[k]) cooccurrence[r][h] += d;
  }
  const std::vector<int> assigned = MaximumWeightAssignment(cooccurrence);

  FileScore score;
  for (size_t k = 0; k < intervals; ++k) {
    if (excluded[k]) continue;
    const double d = times[k + 1] - times[k];
    const double refs = static_cast<double>(ref_active[k].size());
    const double hyps = static_cast<double>(hyp_active[k].size());
    double correct = 0;
    for (int r : ref_active[k])
      if (assigned[r] >= 0 &&
          std::binary_search(hyp_active[k].begin(), hyp_active[k].end(),
                             assigned[r]))
        ++correct;
    score.total += d * refs;
    score.missed += d * std::max(0.0, refs - hyps);
    score.false_alarm += d * std::max(0.0, hyps - refs);
    score.confusion += d * (std::min(refs, hyps) - correct);
    score.correct += d * correct;
  }
  std::vector<std::string> ref_names(ref_ids.size()), hyp_names(hyp_ids.size());
  for (const auto& [label, id] : ref_ids) ref_names[id] = label;
  for (const auto& [label, id] : hyp_ids) hyp_names[id] = label;
  for (size_t r = 0; r < assigned.size(); ++r)
    if (assigned[r] >= 0 && cooccurrence[r][assigned[r]] > 0)
      score.mapping.push_back({uri, ref_names[r], hyp_names[assigned[r]]});
  return score;
}

}  // namespace

DerResult ComputeDer(const std::vector<RttmTurn>& reference,
                     const std::vector<RttmTurn>& hypothesis,
                     const DerOptions& options) {
  options.Validate();
  std::map<std::string, std::pair<std::vector<const RttmTurn*>,
                                  std::vector<const RttmTurn*>>>
      files;
  for (const RttmTurn& turn : reference) files[turn.uri].first.push_back(&turn);
  for (const RttmTurn& turn : hypothesis)
    files[turn.uri].second.push_back(&turn);
  DerResult result;
  for (const auto& [uri, sides] : files) {
    const FileScore score = ScoreFile(uri, sides.first, sides.second, options);
    result.total_s += score.total;
    result.missed_s += score.missed;
    result.false_alarm_s += score.false_alarm;
    result.confusion_s += score.confusion;
    result.correct_s += score.correct;
    result.mapping.insert(result.mapping.end(), score.mapping.begin(),
                          score.mapping.end());
    result.uris.push_back(uri);
  }
  const double errors =
      result.missed_s + result.false_alarm_s + result.confusion_s;
  result.der = result.total_s > 0 ? errors / result.total_s
               : errors > 0       ? std::numeric_limits<double>::infinity()
                                  : 0.0;
  return result;
}

}  // namespace voxprint
