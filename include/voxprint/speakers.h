// Speakers: enroll voices once, then identify and verify them.
//
// A SpeakerStore keeps named speakers and their enrollments (one embedding
// per enrolled recording, with the audio's checksum, duration and seconds of
// speech) in a file (SQLite). A speaker's voiceprint is the mean of its
// L2-normalised enrollment embeddings, re-normalised; identification scores
// a query against every voiceprint (kept in memory as one matrix) and is
// open-set: when the best score is not above the threshold the answer is
// "unknown". Scores are raw cosine similarities in [-1, 1] (pyannote's scale,
// not WeSpeaker's (cos + 1) / 2), or, with a cohort (AsNorm), adaptive
// symmetric normalised scores, whose scale is standard deviations.
//
// Every embedding in a store comes from one model file, recorded by its
// SHA-256: opening a store with another model is refused (kModelError naming
// both checksums), so embeddings of different models are never compared.
//
// Thread safety: a SpeakerStore may be used from many threads at once;
// writes are serialised, and identification runs while another thread (or
// another process) writes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "voxprint/cancel.h"

namespace voxprint {

class Extractor;

// Where a store lives when no location is given:
// $VOXPRINT_DB, else $XDG_DATA_HOME/voxprint/speakers.db, else
// $HOME/.local/share/voxprint/speakers.db.
std::string DefaultSpeakerStorePath();

// Throws Error(kInvalidArgument) naming the problem unless `name` is valid
// UTF-8 of 1 to 128 characters (code points) without control characters.
void ValidateSpeakerName(const std::string& name);

// The name of the score scales, said in every output.
inline constexpr const char* kRawCosineScale =
    "raw cosine similarity in [-1, 1] (not (cos+1)/2)";
inline constexpr const char* kAsNormScale =
    "AS-Norm: standard deviations above the cohort (no fixed range)";

// How much speech an enrollment should collect.
inline constexpr double kRecommendedSpeechSeconds = 20.0;

// One enrolled recording.
struct Enrollment {
  std::string source;        // the file's or upload's name
  std::string audio_sha256;  // of the audio file's bytes, lower-case hex
  double duration_s = 0.0;   // of the audio
  double speech_s = 0.0;     // measured speech in it
  std::vector<float> embedding;
  std::string created_at;  // ISO 8601 UTC (filled by the store)
};

struct SpeakerInfo {
  std::string name;
  std::string metadata_json;  // "" when none
  std::string created_at;     // ISO 8601 UTC
  std::string updated_at;
  int enrollments = 0;
  double duration_s = 0.0;  // all enrollments together
  double speech_s = 0.0;
};

struct SpeakerCandidate {
  std::string name;
  double score = 0.0;
};

struct Identification {
  // Best first; at most top_k.
  std::vector<SpeakerCandidate> candidates;
  double threshold = 0.0;
  // The best candidate's name when its score reaches the threshold; empty
  // for "unknown" (no candidate reached it, or the store is empty).
  std::string speaker;
  bool unknown = true;
  bool as_norm = false;  // scores are AS-Norm's, not raw cosine
};

struct Verification {
  std::string name;
  double score = 0.0;
  double threshold = 0.0;
  bool accepted = false;  // score > threshold, as `compare` decides
  bool as_norm = false;
};

// L2-normalises each embedding, averages them and normalises the mean: a
// speaker's voiceprint. Throws kInvalidArgument for no embeddings, sizes
// that differ, NaN/Inf or an all-zero mean.
std::vector<float> MakeVoiceprint(
    std::span<const std::vector<float>> embeddings);

// A cohort of embeddings [N, dim] for adaptive symmetric score
// normalisation, as WeSpeaker's score_norm.py does it: the cohort mean is
// subtracted from every embedding (cohort, enrollment and test) before
// L2-normalising; a trial's raw score s is the cosine of the centred
// embeddings; each side keeps its top_n highest cosines against the cohort,
// whose mean mu and population standard deviation sd normalise it:
// score = ((s - mu_e) / sd_e + (s - mu_t) / sd_t) / 2.
class AsNorm {
 public:
  // Throws kInvalidArgument for fewer than 2 rows, a size not rows * dim,
  // NaN/Inf values or top_n < 1.
  AsNorm(std::vector<float> cohort, int dim, int top_n = 300);
  int dim() const { return dim_; }
  int rows() const { return rows_; }
  int top_n() const { return top_n_; }

  // `embedding` minus the cohort mean, L2-normalised.
  std::vector<float> Centre(std::span<const float> embedding) const;
  // mu and sd of the top_n cosines of a centred embedding against the cohort.
  struct Stats {
    double mean = 0.0;
    double sd = 0.0;
  };
  Stats CohortStats(std::span<const float> centred) const;
  // The normalised score of two raw (uncentred) embeddings.
  double Score(std::span<const float> enrollment,
               std::span<const float> test) const;

 private:
  int dim_ = 0;
  int rows_ = 0;
  int top_n_ = 0;
  std::vector<float> mean_;
  std::vector<float> cohort_;  // centred, normalised rows
};

// Reads a NumPy .npy file of float32 or float64 (little-endian, C order,
// 2-D) into float32, row-major. Bounded: at most `max_bytes` of file, a
// header of at most 64 KiB. Throws kIoError when it cannot be read and
// kInvalidArgument naming the file and the reason for anything else.
struct NpyMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> values;
};
NpyMatrix ReadNpyMatrix(const std::string& path,
                        int64_t max_bytes = int64_t{1} << 31);
NpyMatrix ParseNpyMatrix(std::span<const uint8_t> bytes,
                         const std::string& name);
// Writes float32 [rows, cols] (kIoError on failure).
void WriteNpyMatrix(const std::string& path, std::span<const float> values,
                    int64_t rows, int64_t cols);

// What measuring a recording for enrollment found.
struct SpeechMeasure {
  double duration_s = 0.0;
  double speech_s = 0.0;
  double clipped_fraction = 0.0;  // samples at or beyond +-0.999
  std::string method;             // "silero-vad" or "energy"
  std::vector<std::string> warnings;
};

// Measures speech in mono 16 kHz samples: with Silero VAD v5 when a model
// file is found (FindVadModel; speech = the VAD's segments), else by energy
// (30 ms frames whose RMS is within 35 dB of the loudest frame's and above
// -55 dBFS). Warnings: "silence" (no speech), "too_short" (< 3 s of speech),
// "clipping" (more than 0.1 % of samples clipped).
class SpeechMeter {
 public:
  // `vad_model_path`: "" finds it (FindVadModel), "energy" forces the energy
  // measure. A model that cannot be found falls back to energy; one that
  // is found but cannot be loaded is an error (kModelError).
  explicit SpeechMeter(const std::string& vad_model_path = "");
  ~SpeechMeter();
  SpeechMeter(const SpeechMeter&) = delete;
  SpeechMeter& operator=(const SpeechMeter&) = delete;
  SpeechMeasure Measure(std::span<const float> samples_16k,
                        const CancelToken& cancel = {}) const;
  const std::string& method() const { return method_; }

 private:
  struct Vad;
  std::unique_ptr<Vad> vad_;
  std::string method_;
};

// Enrollment feedback: speech collected so far against the recommendation.
struct EnrollmentReport {
  std::string name;
  std::vector<Enrollment> added;
  std::vector<SpeechMeasure> measures;  // one per added enrollment
  SpeakerInfo speaker;                  // after the change
  double recommended_speech_s = kRecommendedSpeechSeconds;
  double progress = 0.0;  // speaker.speech_s / recommended, at most 1
  std::vector<std::string> warnings;  // "not_enough_speech" when < recommended
};

// Embeds and measures one recording for enrollment (bytes of an audio file).
Enrollment PrepareEnrollment(const Extractor& extractor,
                             const SpeechMeter& meter,
                             std::span<const uint8_t> audio_bytes,
                             const std::string& source, SpeechMeasure* measure,
                             const CancelToken& cancel = {});

struct SpeakerStoreOptions {
  // A file path ("" = DefaultSpeakerStorePath()).
  std::string location;
  // The model whose embeddings the store holds (ModelInfo::sha256) and their
  // size. A new store records them; an existing one must match. Empty: take
  // the store's own (for listing, removing, renaming, exporting; an absent
  // store is then kIoError).
  std::string model_sha256;
  int embedding_dim = 256;
  // Create the file (and its folder) when absent; false: kIoError.
  bool create = true;
  // How long a write waits for another process's write (ms).
  int busy_timeout_ms = 5000;
};

class SpeakerStore {
 public:
  // Opens (or creates) a store. Throws Error: kModelError when the store was
  // made with another model (naming both checksums) or another embedding
  // size; kIoError naming the file when it cannot be opened, is not a
  // voxprint store, is corrupt, or was written by a newer schema (never
  // rewritten); kInvalidArgument for a bad location.
  static std::unique_ptr<SpeakerStore> Open(const SpeakerStoreOptions& options);
  virtual ~SpeakerStore() = default;

  // The schema version this build writes.
  static int SchemaVersion();
  virtual const std::string& location() const = 0;
  virtual const std::string& model_sha256() const = 0;
  virtual int embedding_dim() const = 0;

  // Adds a speaker with these enrollments, or (append) adds them to an
  // existing speaker. One transaction. Throws kInvalidArgument for a bad
  // name, metadata that is not a JSON object, or no enrollments;
  // kAlreadyExists when the name exists and !append.
  virtual SpeakerInfo Enroll(const std::string& name,
                             std::span<const Enrollment> enrollments,
                             const std::string& metadata_json = "",
                             bool append = false) = 0;
  // kNotFound for an unknown name.
  virtual void Remove(const std::string& name) = 0;
  // kNotFound for an unknown old name, kAlreadyExists when new exists.
  virtual void Rename(const std::string& old_name,
                      const std::string& new_name) = 0;
  virtual std::vector<SpeakerInfo> List() = 0;
  virtual SpeakerInfo Get(const std::string& name) = 0;  // kNotFound
  virtual std::vector<Enrollment> Enrollments(const std::string& name) = 0;
  // Number of speakers.
  virtual size_t Size() = 0;

  // Open-set identification of one embedding: the top_k best voiceprints.
  // With a cohort, scores are AS-Norm's. Throws kInvalidArgument for a bad
  // embedding size, NaN, top_k < 1.
  virtual Identification Identify(std::span<const float> embedding, int top_k,
                                  double threshold,
                                  const AsNorm* cohort = nullptr) = 0;
  // One speaker's score. kNotFound for an unknown name.
  virtual Verification Verify(const std::string& name,
                              std::span<const float> embedding,
                              double threshold,
                              const AsNorm* cohort = nullptr) = 0;

  // Portable voiceprints: a JSON document holding every speaker, its
  // metadata and enrollments, and the model's checksum.
  virtual std::string Export() = 0;
  // Adds every speaker of an Export() document, in one transaction: nothing
  // is added when anything is wrong. kModelError when it was made with
  // another model (both checksums named), kAlreadyExists for a name already
  // in the store, kInvalidArgument for a malformed document.
  virtual size_t Import(const std::string& document) = 0;
};

// Evaluation of scored trials (target or not), as WeSpeaker computes it.
struct TrialScore {
  double score = 0.0;
  bool target = false;
};
struct DetPoint {
  double threshold = 0.0;
  double false_reject = 0.0;  // targets scoring <= threshold
  double false_accept = 0.0;  // non-targets scoring > threshold
};
struct Evaluation {
  size_t targets = 0;
  size_t nontargets = 0;
  double eer = 0.0;  // fraction, not percent
  double eer_threshold = 0.0;
  double min_dcf = 0.0;  // normalised (divided by min(C_miss p, C_fa (1-p)))
  double min_dcf_threshold = 0.0;
  double p_target = 0.01;
  double far = 0.01;              // the requested false-accept rate
  double threshold_at_far = 0.0;  // lowest threshold with FA <= far
  double false_reject_at_far = 0.0;
  std::vector<DetPoint> det;  // one per trial, thresholds ascending
};
// Throws kInvalidArgument unless there is at least one target and one
// non-target, scores are finite, p_target and far in (0, 1).
Evaluation EvaluateTrials(std::span<const TrialScore> trials,
                          double p_target = 0.01, double far = 0.01);

// A trial list: VoxCeleb's "1 a.wav b.wav" (label first, 1 = target) or
// WeSpeaker's "enrol test target|nontarget", each optionally with a score
// ("1 a b 0.71" / "enrol test 0.71 target"). Lines that are empty or start
// with '#' are skipped. Throws kInvalidArgument naming `name` and the line.
struct Trial {
  std::string enrollment;
  std::string test;
  bool target = false;
  std::optional<double> score;
};
std::vector<Trial> ParseTrials(const std::string& text,
                               const std::string& name);

}  // namespace voxprint
