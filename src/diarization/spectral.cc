// WeSpeaker's spectral clustering: pruned cosine affinity, unnormalised
// Laplacian, eigengap count, k-means on the first eigenvectors. The
// eigen-decomposition is LAPACK's dsyevr (Debian's liblapack).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "diarization/linkage.h"
#include "voxprint/error.h"

extern "C" void dsyevr_(const char* jobz, const char* range, const char* uplo,
                        const int* n, double* a, const int* lda,
                        const double* vl, const double* vu, const int* il,
                        const int* iu, const double* abstol, int* m, double* w,
                        double* z, const int* ldz, int* isuppz, double* work,
                        const int* lwork, int* iwork, const int* liwork,
                        int* info, size_t jobz_length, size_t range_length,
                        size_t uplo_length);

namespace voxprint::diarization {
namespace {

constexpr int kDefaultMaxSpeakers = 20;
constexpr int kKMeansIterations = 300;

// The `count` smallest eigenvalues of the symmetric n x n `matrix`
// (destroyed) and their eigenvectors, column-major [n, count].
void SmallestEigenpairs(std::vector<double>& matrix, int n, int count,
                        std::vector<double>& values,
                        std::vector<double>& vectors) {
  const char jobz = 'V', range = 'I', uplo = 'L';
  const int il = 1, iu = count;
  const double vl = 0.0, vu = 0.0, abstol = 0.0;
  int found = 0, info = 0;
  values.assign(n, 0.0);
  vectors.assign(static_cast<size_t>(n) * count, 0.0);
  std::vector<int> support(2 * static_cast<size_t>(std::max(count, 1)));
  // Workspace query first.
  int lwork = -1, liwork = -1;
  double work_size = 0.0;
  int iwork_size = 0;
  dsyevr_(&jobz, &range, &uplo, &n, matrix.data(), &n, &vl, &vu, &il, &iu,
          &abstol, &found, values.data(), vectors.data(), &n, support.data(),
          &work_size, &lwork, &iwork_size, &liwork, &info, 1, 1, 1);
  VOXPRINT_CHECK(info == 0, "dsyevr workspace query failed");
  lwork = static_cast<int>(work_size);
  liwork = iwork_size;
  std::vector<double> work(static_cast<size_t>(lwork));
  std::vector<int> iwork(static_cast<size_t>(liwork));
  dsyevr_(&jobz, &range, &uplo, &n, matrix.data(), &n, &vl, &vu, &il, &iu,
          &abstol, &found, values.data(), vectors.data(), &n, support.data(),
          work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1, 1);
  VOXPRINT_CHECK(info == 0 && found == count,
                 "dsyevr did not converge (info " + std::to_string(info) + ")");
  values.resize(count);
}

// k-means (Lloyd) on the rows of `points` [n, k], started from the
// farthest-first points from row 0; ties go to the lower index.
std::vector<int> KMeans(const std::vector<double>& points, int64_t n, int k) {
  auto distance = [&](int64_t i, const double* center) {
    double sum = 0.0;
    for (int d = 0; d < k; ++d) {
      const double diff = points[i * k + d] - center[d];
      sum += diff * diff;
    }
    return sum;
  };
  std::vector<double> centers(static_cast<size_t>(k) * k);
  std::copy_n(points.begin(), k, centers.begin());
  std::vector<double> nearest(n, std::numeric_limits<double>::infinity());
  for (int c = 1; c < k; ++c) {
    int64_t farthest = 0;
    for (int64_t i = 0; i < n; ++i) {
      nearest[i] = std::min(nearest[i], distance(i, &centers[(c - 1) * k]));
      if (nearest[i] > nearest[farthest]) farthest = i;
    }
    std::copy_n(points.begin() + farthest * k, k, centers.begin() + c * k);
  }
  std::vector<int> labels(n, -1);
  for (int iteration = 0; iteration < kKMeansIterations; ++iteration) {
    bool changed = false;
    for (int64_t i = 0; i < n; ++i) {
      int best = 0;
      double best_distance = distance(i, &centers[0]);
      for (int c = 1; c < k; ++c) {
        const double value = distance(i, &centers[c * k]);
        if (value < best_distance) {
          best_distance = value;
          best = c;
        }
      }
      changed |= labels[i] != best;
      labels[i] = best;
    }
    if (!changed) break;
    std::vector<double> sums(centers.size(), 0.0);
    std::vector<int64_t> members(k, 0);
    for (int64_t i = 0; i < n; ++i) {
      ++members[labels[i]];
      for (int d = 0; d < k; ++d) sums[labels[i] * k + d] += points[i * k + d];
    }
    for (int c = 0; c < k; ++c)
      if (members[c] > 0)  // an empty cluster keeps its centre
        for (int d = 0; d < k; ++d)
          centers[c * k + d] =
              sums[c * k + d] / static_cast<double>(members[c]);
  }
  return labels;
}

}  // namespace

std::vector<int> SpectralClusters(std::span<const float> embeddings, int64_t n,
                                  int dim, const ClusteringOptions& options,
                                  std::vector<double>* eigenvalues,
                                  const CancelToken& cancel) {
  if (n <= 2) return std::vector<int>(n, 0);
  if (n > options.max_spectral_embeddings)
    throw Error(ErrorCode::kResourceLimit,
                "spectral clustering takes at most " +
                    std::to_string(options.max_spectral_embeddings) +
                    " windows (a dense " + std::to_string(n) + " x " +
                    std::to_string(n) +
                    " eigen-decomposition); use ahc for this input");
  // Affinity (1 + cos) / 2 of unit vectors.
  std::vector<double> unit(embeddings.begin(), embeddings.end());
  for (int64_t i = 0; i < n; ++i) {
    double norm = 0.0;
    for (int k = 0; k < dim; ++k) norm += unit[i * dim + k] * unit[i * dim + k];
    norm = std::sqrt(norm);
    if (norm > 0.0)
      for (int k = 0; k < dim; ++k) unit[i * dim + k] /= norm;
  }
  std::vector<double> affinity(static_cast<size_t>(n) * n);
  for (int64_t i = 0; i < n; ++i) {
    if (i % 256 == 0) cancel.ThrowIfCancelled("clustering");
    for (int64_t j = i; j < n; ++j) {
      double dot = 0.0;
      for (int k = 0; k < dim; ++k)
        dot += unit[i * dim + k] * unit[j * dim + k];
      affinity[i * n + j] = affinity[j * n + i] = 0.5 * (1.0 + dot);
    }
  }
  // Each row keeps its largest entries as 1, the rest 0 (stable order).
  const int64_t dropped =
      n < 1000 ? std::max<int64_t>(n - options.spectral_neighbors, 2)
               : static_cast<int64_t>((1.0 - 0.01) * static_cast<double>(n));
  std::vector<double> pruned(affinity.size());
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) {
    const double* row = affinity.data() + i * n;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return row[a] < row[b]; });
    for (int64_t r = 0; r < n; ++r)
      pruned[i * n + order[r]] = r < dropped ? 0.0 : 1.0;
  }
  affinity.clear();
  affinity.shrink_to_fit();
  // Symmetrised, zero diagonal, Laplacian D - A.
  std::vector<double> laplacian(pruned.size());
  for (int64_t i = 0; i < n; ++i) {
    double degree = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      const double a =
          i == j ? 0.0 : 0.5 * (pruned[i * n + j] + pruned[j * n + i]);
      laplacian[i * n + j] = -a;
      degree += a;
    }
    laplacian[i * n + i] = degree;
  }
  pruned.clear();
  pruned.shrink_to_fit();
  cancel.ThrowIfCancelled("clustering");

  // The count: options.num_speakers, or the largest gap lambda_k -
  // lambda_(k-1) for k in [min, max].
  const int most = static_cast<int>(std::min<int64_t>(
      n - 1, options.max_speakers.value_or(kDefaultMaxSpeakers)));
  const int least = std::min(options.min_speakers.value_or(1), most);
  const int wanted =
      options.num_speakers
          ? static_cast<int>(std::min<int64_t>(*options.num_speakers, n))
          : 0;
  const int computed = std::max(most + 1, wanted);
  std::vector<double> values, vectors;
  SmallestEigenpairs(laplacian, static_cast<int>(n),
                     static_cast<int>(std::min<int64_t>(computed, n)), values,
                     vectors);
  int k = wanted;
  if (k == 0) {
    k = least;
    double best_gap = -std::numeric_limits<double>::infinity();
    for (int c = least; c <= most; ++c) {
      const double gap = values[c] - values[c - 1];
      if (gap > best_gap) {
        best_gap = gap;
        k = c;
      }
    }
  }
  if (eigenvalues) *eigenvalues = values;
  // Rows of the first k eigenvectors (column-major in `vectors`).
  std::vector<double> points(static_cast<size_t>(n) * k);
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < k; ++c) points[i * k + c] = vectors[c * n + i];
  return KMeans(points, n, k);
}

}  // namespace voxprint::diarization
