// Internal clustering steps (the public ones are in voxprint/diarizer.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "voxprint/cancel.h"
#include "voxprint/diarizer.h"

namespace voxprint::diarization {

// Up to this many inputs the linkage keeps its distances in double, as
// SciPy does (N (N - 1) / 2 of them: 128 MB at 5,657); beyond, in float
// (about 80 minutes of speech at the default step), so that a two-hour file
// stays within memory. Merge order may then differ from SciPy's where two
// distances are within float rounding.
inline constexpr int64_t kDoubleDistancesUpTo = 5657;

// SciPy's linkage(method="centroid") on `n` vectors of `dim` doubles.
std::vector<LinkageMerge> CentroidLinkageOf(std::span<const double> vectors,
                                            int64_t n, int dim,
                                            const CancelToken& cancel = {});

// SciPy's fcluster(criterion="distance") - 1 on a dendrogram whose merge k
// is taken to lie at heights[k] (pyannote cuts at merge indices too).
std::vector<int> FlatClustersOf(std::span<const LinkageMerge> merges, int64_t n,
                                std::span<const double> heights,
                                double threshold);

// pyannote 3.1's AgglomerativeClustering.cluster on `n` vectors.
std::vector<int> AgglomerativeClusters(std::span<const float> embeddings,
                                       int64_t n, int dim,
                                       const ClusteringOptions& options,
                                       const CancelToken& cancel = {});

// WeSpeaker's spectral clustering; `eigenvalues` (optional) receives the
// smallest Laplacian eigenvalues it looked at.
std::vector<int> SpectralClusters(std::span<const float> embeddings, int64_t n,
                                  int dim, const ClusteringOptions& options,
                                  std::vector<double>* eigenvalues = nullptr,
                                  const CancelToken& cancel = {});

}  // namespace voxprint::diarization
