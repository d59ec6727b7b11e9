// Diarization error rate: RTTM files in, DER and its parts out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace voxprint {

// One SPEAKER line of an RTTM file.
struct RttmTurn {
  std::string uri;
  double start_s = 0.0;
  double duration_s = 0.0;
  std::string speaker;
  bool operator==(const RttmTurn&) const = default;
};

// Bounds on what ParseRttm accepts (untrusted files).
struct RttmLimits {
  size_t max_bytes = size_t{64} << 20;
  size_t max_line_bytes = 4096;
  size_t max_turns = 1000000;
  double max_time_s = 1e7;  // 115 days
};

// SPEAKER lines "SPEAKER uri channel start duration <NA> <NA> speaker ...";
// blank lines, ';;' comments and other record types (SPKR-INFO, LEXEME, ...)
// are skipped; a zero duration is kept. Throws Error(kCorruptInput) naming
// `name`, the line number and the reason: fewer than 8 fields, a start or
// duration that is not a finite number in [0, max_time_s], a line or file
// over the limits, NUL bytes.
std::vector<RttmTurn> ParseRttm(std::string_view text, const std::string& name,
                                const RttmLimits& limits = {});
// Reads and parses a file (kIoError when it cannot be read).
std::vector<RttmTurn> ReadRttmFile(const std::string& path,
                                   const RttmLimits& limits = {});

// How a collar is measured. Both remove time around every reference turn's
// start and end from scoring; they differ by a factor of two.
enum class CollarConvention {
  kPyannote,  // pyannote.metrics' `collar`: the total width (collar/2 each
              // side)
  kMdEval,    // NIST md-eval's `-c`: on each side (+- collar)
};

struct DerOptions {
  double collar = 0.0;  // seconds, in `convention`'s sense
  CollarConvention convention = CollarConvention::kPyannote;
  // Throws kInvalidArgument: collar finite in [0, 60].
  void Validate() const;
  // "collar 0.5 s total width (pyannote.metrics collar=0.5: +-0.25 s around
  // each reference boundary)", or md-eval's wording; overlap is scored.
  std::string Describe() const;
};

struct DerResult {
  double total_s =
      0.0;  // reference speech scored (overlap counted per speaker)
  double missed_s = 0.0;
  double false_alarm_s = 0.0;
  double confusion_s = 0.0;
  double correct_s = 0.0;
  // (missed + false alarm + confusion) / total; 0 when both are empty, and
  // +inf when only the reference is empty.
  double der = 0.0;
  // Optimal one-to-one mapping (Hungarian: most co-occurring time),
  // (uri, reference speaker, hypothesis speaker).
  struct Pair {
    std::string uri, reference, hypothesis;
  };
  std::vector<Pair> mapping;
  std::vector<std::string> uris;  // scored, sorted
};

// DER of `hypothesis` against `reference`, file by file (turns grouped by
// uri; a uri in one side only scores as all missed or all false alarm),
// overlap scored, the optimal mapping per file.
DerResult ComputeDer(const std::vector<RttmTurn>& reference,
                     const std::vector<RttmTurn>& hypothesis,
                     const DerOptions& options = {});

// The assignment of rows to columns maximising the sum of `weights`
// ([rows][cols], any shape): result[r] = column or -1. O(n^3) Hungarian.
std::vector<int> MaximumWeightAssignment(
    const std::vector<std::vector<double>>& weights);

}  // namespace voxprint
