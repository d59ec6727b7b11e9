// Clustering options, the public clustering entry points and pyannote 3.1's
// agglomerative clustering.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "diarization/linkage.h"
#include "voxprint/diarizer.h"
#include "voxprint/error.h"

namespace voxprint {
namespace {

constexpr int kMaxSpeakerCount = 10000;

void CheckCount(const std::optional<int>& value, const char* name) {
  if (value && (*value < 1 || *value > kMaxSpeakerCount))
    throw Error(ErrorCode::kInvalidArgument,
                std::string(name) + " must be from 1 to " +
                    std::to_string(kMaxSpeakerCount) + ", got " +
                    std::to_string(*value));
}

void CheckEmbeddings(std::span<const float> embeddings, int64_t count,
                     int dim) {
  if (count < 0 || dim <= 0 ||
      embeddings.size() != static_cast<size_t>(count) * dim)
    throw Error(ErrorCode::kInvalidArgument,
                "embeddings must be [count, dim]: " +
                    std::to_string(embeddings.size()) + " values for " +
                    std::to_string(count) + " x " + std::to_string(dim));
  for (float value : embeddings)
    if (!std::isfinite(value))
      throw Error(ErrorCode::kInvalidArgument,
                  "embeddings hold NaN or infinite values");
}

}  // namespace

const char* ClusteringMethodName(ClusteringMethod method) {
  return method == ClusteringMethod::kSpectral ? "spectral" : "ahc";
}

ClusteringMethod ParseClusteringMethod(const std::string& name) {
  if (name == "ahc" || name == "agglomerative")
    return ClusteringMethod::kAgglomerative;
  if (name == "spectral") return ClusteringMethod::kSpectral;
  throw Error(ErrorCode::kInvalidArgument,
              "clustering must be ahc or spectral, got '" + name + "'");
}

void ClusteringOptions::Validate() const {
  if (!std::isfinite(threshold) || threshold < 0.0 || threshold > 2.0)
    throw Error(ErrorCode::kInvalidArgument,
                "threshold must be from 0 to 2 (a distance between unit "
                "vectors), got " +
                    std::to_string(threshold));
  if (min_cluster_size < 1)
    throw Error(ErrorCode::kInvalidArgument,
                "min_cluster_size must be at least 1, got " +
                    std::to_string(min_cluster_size));
  if (spectral_neighbors < 2)
    throw Error(ErrorCode::kInvalidArgument,
                "spectral_neighbors must be at least 2, got " +
                    std::to_string(spectral_neighbors));
  CheckCount(num_speakers, "num_speakers");
  CheckCount(min_speakers, "min_speakers");
  CheckCount(max_speakers, "max_speakers");
  if (min_speakers && max_speakers && *min_speakers > *max_speakers)
    throw Error(ErrorCode::kInvalidArgument,
                "min_speakers (" + std::to_string(*min_speakers) +
                    ") is above max_speakers (" +
                    std::to_string(*max_speakers) + ")");
  if (num_speakers && ((min_speakers && *num_speakers < *min_speakers) ||
                       (max_speakers && *num_speakers > *max_speakers)))
    throw Error(ErrorCode::kInvalidArgument,
                "num_speakers (" + std::to_string(*num_speakers) +
                    ") is outside [min_speakers, max_speakers]");
}

std::vector<LinkageMerge> CentroidLinkage(std::span<const float> vectors,
                                          int64_t count, int dim) {
  CheckEmbeddings(vectors, count, dim);
  const std::vector<double> values(vectors.begin(), vectors.end());
  return diarization::CentroidLinkageOf(values, count, dim);
}

std::vector<int> FlatClusters(std::span<const LinkageMerge> merges,
                              int64_t count, double threshold) {
  if (count < 0 || (count > 0 && static_cast<int64_t>(merges.size()) !=
                                     std::max<int64_t>(count - 1, 0)))
    throw Error(ErrorCode::kInvalidArgument,
                "a dendrogram of " + std::to_string(count) + " inputs has " +
                    std::to_string(std::max<int64_t>(count - 1, 0)) +
                    " merges, got " + std::to_string(merges.size()));
  std::vector<double> heights;
  for (const LinkageMerge& merge : merges) heights.push_back(merge.distance);
  return diarization::FlatClustersOf(merges, count, heights, threshold);
}

namespace diarization {
namespace {

// Cluster ids present and how many members each has, ids ascending.
std::map<int, int64_t> Counts(const std::vector<int>& labels) {
  std::map<int, int64_t> counts;
  for (int label : labels) ++counts[label];
  return counts;
}

int64_t LargeCount(const std::map<int, int64_t>& counts, int64_t min_size) {
  int64_t large = 0;
  for (const auto& [id, count] : counts) large += count >= min_size;
  return large;
}

}  // namespace

namespace {

// pyannote 3.1's rules with clusters of fewer than `min_size` members
// counted as small.
std::vector<int> PyannoteClusters(std::span<const float> embeddings, int64_t n,
                                  int dim, const ClusteringOptions& options,
                                  int64_t min_size, const CancelToken& cancel) {
  // Unit length (a zero vector stays zero; pyannote would get NaN).
  std::vector<double> unit(embeddings.begin(), embeddings.end());
  for (int64_t i = 0; i < n; ++i) {
    double* row = unit.data() + i * dim;
    double norm = 0.0;
    for (int k = 0; k < dim; ++k) norm += row[k] * row[k];
    norm = std::sqrt(norm);
    if (norm > 0.0)
      for (int k = 0; k < dim; ++k) row[k] /= norm;
  }
  const std::vector<LinkageMerge> merges =
      CentroidLinkageOf(unit, n, dim, cancel);
  std::vector<double> heights, indices;
  for (size_t k = 0; k < merges.size(); ++k) {
    heights.push_back(merges[k].distance);
    indices.push_back(static_cast<double>(k));
  }
  std::vector<int> clusters =
      FlatClustersOf(merges, n, heights, options.threshold);
  std::map<int, int64_t> counts = Counts(clusters);
  int64_t large = LargeCount(counts, min_size);

  // pyannote's set_num_clusters, then its search for the count.
  const int64_t min_clusters = std::max<int64_t>(
      1, std::min<int64_t>(n, options.num_speakers.value_or(
                                  options.min_speakers.value_or(1))));
  const int64_t max_clusters = std::max<int64_t>(
      1,
      std::min<int64_t>(
          n, options.num_speakers.value_or(options.max_speakers.value_or(
                 static_cast<int>(std::min<int64_t>(n, kMaxSpeakerCount))))));
  std::optional<int64_t> wanted;
  if (min_clusters == max_clusters) wanted = min_clusters;
  if (large < min_clusters)
    wanted = min_clusters;
  else if (large > max_clusters)
    wanted = max_clusters;
  if (wanted) {
    // Merges in order of their distance from the threshold; cutting after
    // merge k leaves the clusters of merges 0..k.
    std::vector<size_t> order(merges.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::abs(heights[a] - options.threshold) <
             std::abs(heights[b] - options.threshold);
    });
    int64_t best_iteration = n - 1;
    int64_t best_large = 1;
    for (size_t iteration : order) {
      if (merges[iteration].size < min_size) continue;
      cancel.ThrowIfCancelled("clustering");
      clusters =
          FlatClustersOf(merges, n, indices, static_cast<double>(iteration));
      counts = Counts(clusters);
      large = LargeCount(counts, min_size);
      if (std::abs(large - *wanted) < std::abs(best_large - *wanted)) {
        best_iteration = static_cast<int64_t>(iteration);
        best_large = large;
      }
      if (large == *wanted) break;
    }
    if (best_large != *wanted) {
      clusters = FlatClustersOf(merges, n, indices,
                                static_cast<double>(best_iteration));
      counts = Counts(clusters);
      large = LargeCount(counts, min_size);
    }
  }
  if (large == 0) return std::vector<int>(n, 0);

  std::vector<int> large_ids, small_ids;
  for (const auto& [id, count] : counts)
    (count >= min_size ? large_ids : small_ids).push_back(id);
  if (small_ids.empty()) return clusters;

  // Each small cluster joins the large one whose centroid is nearest in
  // cosine distance.
  auto centroid = [&](int id) {
    std::vector<double> sum(dim, 0.0);
    int64_t members = 0;
    for (int64_t i = 0; i < n; ++i)
      if (clusters[i] == id) {
        for (int k = 0; k < dim; ++k) sum[k] += unit[i * dim + k];
        ++members;
      }
    for (double& value : sum) value /= static_cast<double>(members);
    return sum;
  };
  auto cosine_distance = [&](const std::vector<double>& a,
                             const std::vector<double>& b) {
    double dot = 0.0, aa = 0.0, bb = 0.0;
    for (int k = 0; k < dim; ++k) {
      dot += a[k] * b[k];
      aa += a[k] * a[k];
      bb += b[k] * b[k];
    }
    const double norms = std::sqrt(aa) * std::sqrt(bb);
    return norms > 0.0 ? 1.0 - dot / norms : 1.0;
  };
  std::vector<std::vector<double>> large_centroids;
  for (int id : large_ids) large_centroids.push_back(centroid(id));
  std::map<int, int> target;
  for (int id : small_ids) {
    const std::vector<double> small = centroid(id);
    size_t best = 0;
    double best_distance = cosine_distance(large_centroids[0], small);
    for (size_t j = 1; j < large_centroids.size(); ++j) {
      const double distance = cosine_distance(large_centroids[j], small);
      if (distance < best_distance) {
        best_distance = distance;
        best = j;
      }
    }
    target[id] = large_ids[best];
  }
  // Renumbered 0..K-1 in the order of the large clusters' ids.
  std::map<int, int> renumber;
  for (size_t j = 0; j < large_ids.size(); ++j)
    renumber[large_ids[j]] = static_cast<int>(j);
  for (int& label : clusters) {
    const auto moved = target.find(label);
    label = renumber.at(moved == target.end() ? label : moved->second);
  }
  return clusters;
}

}  // namespace

std::vector<int> AgglomerativeClusters(std::span<const float> embeddings,
                                       int64_t n, int dim,
                                       const ClusteringOptions& options,
                                       const CancelToken& cancel) {
  if (n == 0) return {};
  if (n == 1) return {0};
  // round() as Python's: half to even.
  const int64_t min_size = std::min<int64_t>(
      options.min_cluster_size,
      std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(0.1 * n))));
  std::vector<int> labels =
      PyannoteClusters(embeddings, n, dim, options, min_size, cancel);
  // pyannote may miss an asked-for count when splitting would make small
  // clusters ("Found only K clusters"); counting every cluster as large
  // reaches any count in [1, N], so a count asked for is always met.
  const int64_t found = *std::max_element(labels.begin(), labels.end()) + 1;
  const int64_t least = std::min<int64_t>(
      n, options.num_speakers.value_or(options.min_speakers.value_or(1)));
  const int64_t most = std::min<int64_t>(
      n, options.num_speakers.value_or(
             options.max_speakers.value_or(kMaxSpeakerCount)));
  if (min_size > 1 && (found < least || found > most))
    labels = PyannoteClusters(embeddings, n, dim, options, 1, cancel);
  return labels;
}

}  // namespace diarization

std::vector<int> ClusterEmbeddings(std::span<const float> embeddings,
                                   int64_t count, int dim,
                                   const ClusteringOptions& options) {
  options.Validate();
  CheckEmbeddings(embeddings, count, dim);
  if (options.method == ClusteringMethod::kSpectral)
    return diarization::SpectralClusters(embeddings, count, dim, options);
  return diarization::AgglomerativeClusters(embeddings, count, dim, options);
}

}  // namespace voxprint
