// Speaker diarization: who spoke when.
//
// Separable parts, each usable alone:
//   speech segments (vad.h)
//   -> PlanDiarizationWindows: windows of 1.5 s every 0.75 s inside each
//      segment (WeSpeaker's recipe)
//   -> embeddings of the windows through the Extractor's batched network
//   -> ClusterEmbeddings: agglomerative (pyannote 3.1's settings) or
//      spectral (WeSpeaker's recipe), deterministic
//   -> TurnsFromWindowLabels: speaker turns; where two windows with different
//      labels overlap, the turn changes at the middle of their overlap.
// Diarizer runs them all on a file, bytes or samples.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "voxprint/audio.h"
#include "voxprint/cancel.h"
#include "voxprint/extractor.h"
#include "voxprint/vad.h"

namespace voxprint {

namespace audio {
class StreamDecoder;  // internal
}

// pyannote/speaker-diarization-3.1's clustering threshold (centroid linkage
// on unit vectors: a Euclidean distance).
inline constexpr double kDefaultAhcThreshold = 0.7045654963945799;

// ---------------------------------------------------------------- windows

struct DiarizationWindowOptions {
  double window_s = 1.5;  // length of a window
  double step_s = 0.75;   // hop between window starts inside a segment
  // Throws kInvalidArgument naming the option: window in [0.1, 60] s, step
  // in [0.01 s, window].
  void Validate() const;
};

// One window: the audio embedded, [start, end), and the part of the speech
// it speaks for, [speech_start, speech_end) (16 kHz samples).
struct DiarizationWindow {
  int64_t start_sample = 0;
  int64_t end_sample = 0;
  int64_t speech_start = 0;
  int64_t speech_end = 0;
  size_t segment = 0;  // index of its speech segment
  bool operator==(const DiarizationWindow&) const = default;
};

// Windows inside each speech segment, in time order:
// - a segment longer than a window gets windows every step from its start;
//   when the last one ends before the segment does, one more ends at the
//   segment's end (every window is a full window of that segment's speech);
// - a segment not longer than a window gets one window centred on it,
//   moved to stay inside the audio, speaking for the segment only;
// - audio shorter than one window gets a single window: all of it.
// Pure; validates `options`.
std::vector<DiarizationWindow> PlanDiarizationWindows(
    std::span<const SpeechSegment> segments, int64_t total_samples,
    const DiarizationWindowOptions& options = {});

// ------------------------------------------------------------- clustering

enum class ClusteringMethod { kAgglomerative, kSpectral };
// "ahc" / "spectral"; ParseClusteringMethod throws kInvalidArgument.
const char* ClusteringMethodName(ClusteringMethod method);
ClusteringMethod ParseClusteringMethod(const std::string& name);

struct ClusteringOptions {
  ClusteringMethod method = ClusteringMethod::kAgglomerative;
  // Agglomerative: the linkage distance at which merging stops.
  double threshold = kDefaultAhcThreshold;
  // Agglomerative: clusters with fewer than min(min_cluster_size,
  // max(1, round(0.1 N))) members are merged into the nearest large one.
  int min_cluster_size = 12;
  // Spectral: each row of the affinity keeps its top `spectral_neighbors`
  // entries (self included) when there are fewer than 1000 embeddings, its
  // top 1 % otherwise (WeSpeaker's p = 0.01).
  int spectral_neighbors = 10;
  // Spectral: the most embeddings it takes (a dense eigen-decomposition of
  // N x N); more is kResourceLimit, naming agglomerative as the way out.
  int64_t max_spectral_embeddings = 4000;
  // Speaker counts. num_speakers fixes the count; min/max bound it. Spectral
  // looks for the eigengap among counts [min, max] (max defaults to 20).
  std::optional<int> num_speakers;
  std::optional<int> min_speakers;
  std::optional<int> max_speakers;
  // Throws kInvalidArgument naming the option: counts in [1, 10000], min <=
  // max, num within [min, max]; threshold finite in [0, 2];
  // min_cluster_size >= 1; spectral_neighbors >= 2.
  void Validate() const;
};

// One merge of a dendrogram, as SciPy's linkage matrix writes it: clusters
// `first` < `second` (0..N-1 are the inputs, N + k the cluster made by merge
// k) joined at `distance` into a cluster of `size` inputs.
struct LinkageMerge {
  int64_t first = 0;
  int64_t second = 0;
  double distance = 0.0;
  int64_t size = 0;
};

// Centroid linkage of `count` vectors of `dim` floats (row-major), Euclidean,
// in double precision: SciPy's linkage(X, method="centroid") step for step
// (its generic algorithm, same merge order and cluster numbering). Memory:
// N (N - 1) / 2 doubles.
std::vector<LinkageMerge> CentroidLinkage(std::span<const float> vectors,
                                          int64_t count, int dim);

// SciPy's fcluster(Z, threshold, criterion="distance") - 1: flat clusters
// whose every merge lies at or below `threshold`, numbered from 0 in SciPy's
// order.
std::vector<int> FlatClusters(std::span<const LinkageMerge> merges,
                              int64_t count, double threshold);

// Labels 0..K-1, one per embedding ([count, dim] row-major), by
// options.method. The same input always gives the same labels:
// - agglomerative: pyannote 3.1's AgglomerativeClustering (embeddings made
//   unit length, centroid linkage, threshold, small clusters reassigned to
//   the large one whose centroid is nearest in cosine distance; with a
//   speaker count the dendrogram is cut where the number of large clusters
//   is closest to it);
// - spectral: WeSpeaker's recipe: affinity (1 + cos) / 2, each row keeping
//   its top entries (set to 1, the others to 0), symmetrised, zero
//   diagonal, unnormalised Laplacian D - A; the count is the largest
//   eigengap among [min, max] (or num_speakers); k-means on the first K
//   eigenvectors, started from the farthest-first points from row 0.
// Zero embeddings: empty; one or two: all 0 (spectral, as WeSpeaker).
// Throws kInvalidArgument for a bad size or NaN/Inf values.
std::vector<int> ClusterEmbeddings(std::span<const float> embeddings,
                                   int64_t count, int dim,
                                   const ClusteringOptions& options = {});

// --------------------------------------------------------------- turns

// A stretch of one speaker's speech, [start, end) in 16 kHz samples.
struct SpeakerTurn {
  int64_t start_sample = 0;
  int64_t end_sample = 0;
  int speaker = 0;  // index into Diarization::speakers
  double StartSeconds() const {
    return static_cast<double>(start_sample) / kModelSampleRateHz;
  }
  double EndSeconds() const {
    return static_cast<double>(end_sample) / kModelSampleRateHz;
  }
  bool operator==(const SpeakerTurn&) const = default;
};

// Turns from labelled windows (labels[i] for windows[i], in the order
// PlanDiarizationWindows gives): inside a segment each window speaks from
// the middle of its overlap with the previous window to the middle of its
// overlap with the next, so where labels differ the turn changes there;
// neighbouring pieces of one label join. Turns never cross a segment's
// bounds. Pure.
std::vector<SpeakerTurn> TurnsFromWindowLabels(
    std::span<const DiarizationWindow> windows, std::span<const int> labels);

// ------------------------------------------------------------ diarizer

struct DiarizedSpeaker {
  std::string label;  // "SPEAKER_00", ... or the name the namer gave
  double speech_s = 0.0;
  int64_t windows = 0;              // windows clustered into this speaker
  std::vector<float> centroid;      // mean of its windows' embeddings
  std::optional<std::string> name;  // from DiarizeRequest::namer
  std::optional<double> name_similarity;
};

struct Diarization {
  std::string source;
  AudioInfo audio;
  double duration_s = 0.0;  // of the 16 kHz audio
  double speech_s = 0.0;    // total of the VAD's segments
  std::vector<SpeechSegment> speech;
  std::vector<SpeakerTurn> turns;         // in time order
  std::vector<DiarizedSpeaker> speakers;  // in order of first turn
  int64_t num_windows = 0;
  ClusteringMethod method = ClusteringMethod::kAgglomerative;
  double processing_s = 0.0;
};

// What a speaker store answers for a cluster's centroid: a name and the
// cosine similarity it was found at, or nothing (the cluster keeps its
// SPEAKER_nn label).
struct SpeakerMatch {
  std::string name;
  double similarity = 0.0;
};
using SpeakerNamer =
    std::function<std::optional<SpeakerMatch>(std::span<const float>)>;

// Progress of one diarization: windows embedded so far, of the total.
using DiarizationProgress = std::function<void(int64_t done, int64_t total)>;

struct DiarizeRequest {
  VadOptions vad;
  DiarizationWindowOptions windows;
  ClusteringOptions clustering;
  // Windows per network run (the batch): more is faster up to the cores'
  // cache; memory holds one batch of features.
  int batch_windows = 32;
  CancelToken cancel;
  SpeakerNamer namer;            // optional
  DiarizationProgress progress;  // optional, called after every batch
  // Files and bytes up to this long (by their header, or found while
  // decoding) are decoded once and held at 16 kHz (3.8 MB a minute); longer
  // ones are decoded twice, block by block (speech first, then the
  // windows), so memory does not grow with their length. 0: always twice.
  double hold_audio_up_to_s = 1200.0;
  // Validates every part (kInvalidArgument naming the option).
  void Validate() const;
};

class Diarizer {
 public:
  // Both must outlive the Diarizer; both are thread-safe, so is this.
  // `limits` bound the decoding of files and bytes.
  Diarizer(const Extractor& extractor, const VoiceActivityDetector& vad,
           AudioLimits limits = {});

  // Decodes once (to 16 kHz, with the Extractor's audio limits), finds the
  // speech, embeds its windows in batches and clusters them. Audio without
  // speech gives an empty diarization (no turns, no speakers), not an
  // error. Errors name the input: decoding's, kInvalidArgument for the
  // request, kResourceLimit (too many windows for spectral), kCancelled.
  Diarization DiarizeFile(const std::string& path,
                          const DiarizeRequest& request = {}) const;
  Diarization DiarizeBytes(std::span<const uint8_t> bytes,
                           const std::string& name,
                           const DiarizeRequest& request = {}) const;
  // Mono 16 kHz samples.
  Diarization DiarizeSamples(std::span<const float> samples_16k,
                             const std::string& name,
                             const DiarizeRequest& request = {}) const;

 private:
  using WindowSamples =
      std::function<std::span<const float>(size_t, const DiarizationWindow&)>;
  using Opener = std::function<std::unique_ptr<audio::StreamDecoder>()>;
  // Decodes once and holds the audio up to request.hold_audio_up_to_s;
  // longer inputs are read twice block by block (VAD, then windows).
  Diarization DiarizeOpened(const Opener& open, const std::string& name,
                            const DiarizeRequest& request) const;
  // Windows, embeddings, clustering and turns for found speech.
  Diarization FromSpeech(const std::string& name, const DiarizeRequest& request,
                         int64_t total_samples,
                         std::vector<SpeechSegment> speech,
                         const WindowSamples& window_samples) const;

  const Extractor& extractor_;
  const VoiceActivityDetector& vad_;
  AudioLimits limits_;
};

// "SPEAKER <uri> 1 <start> <duration> <NA> <NA> <label> <NA> <NA>" per turn,
// times with 3 decimals: the lines pyannote's Annotation.write_rttm writes.
// Whitespace in `uri` becomes '_'.
std::string DiarizationRttm(const Diarization& diarization,
                            const std::string& uri);

}  // namespace voxprint
