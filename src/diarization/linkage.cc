// Centroid linkage and flat clusters, step for step as SciPy computes them
// (scipy.cluster.hierarchy: linkage's generic algorithm for "centroid",
// fcluster's "distance" criterion), so that labels agree with pyannote's.
#include "diarization/linkage.h"

#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "voxprint/error.h"

namespace voxprint::diarization {
namespace {

// Index of pair (i, j), i != j, in a condensed distance matrix of n points.
inline size_t Condensed(int64_t n, int64_t i, int64_t j) {
  if (i > j) std::swap(i, j);
  return static_cast<size_t>(n * i - i * (i + 1) / 2 + (j - i - 1));
}

// A binary min-heap of one value per key whose values change: the same
// sift rules as SciPy's, so equal distances are taken in the same order.
class KeyedHeap {
 public:
  explicit KeyedHeap(std::vector<double> values)
      : values_(std::move(values)),
        key_at_(values_.size()),
        index_of_(values_.size()),
        size_(static_cast<int64_t>(values_.size())) {
    for (int64_t i = 0; i < size_; ++i) key_at_[i] = index_of_[i] = i;
    for (int64_t i = size_ / 2 - 1; i >= 0; --i) SiftDown(i);
  }
  std::pair<int64_t, double> Min() const { return {key_at_[0], values_[0]}; }
  void RemoveMin() {
    Swap(0, size_ - 1);
    --size_;
    SiftDown(0);
  }
  void Change(int64_t key, double value) {
    const int64_t index = index_of_[key];
    const double old = values_[index];
    values_[index] = value;
    if (value < old)
      SiftUp(index);
    else
      SiftDown(index);
  }

 private:
  void Swap(int64_t i, int64_t j) {
    std::swap(values_[i], values_[j]);
    std::swap(key_at_[i], key_at_[j]);
    index_of_[key_at_[i]] = i;
    index_of_[key_at_[j]] = j;
  }
  void SiftUp(int64_t index) {
    while (index > 0) {
      const int64_t parent = (index - 1) / 2;
      if (values_[parent] <= values_[index]) break;
      Swap(index, parent);
      index = parent;
    }
  }
  void SiftDown(int64_t index) {
    int64_t child = 2 * index + 1;
    while (child < size_) {
      if (child + 1 < size_ && values_[child + 1] < values_[child]) ++child;
      if (!(values_[index] > values_[child])) break;
      Swap(index, child);
      index = child;
      child = 2 * index + 1;
    }
  }

  std::vector<double> values_;
  std::vector<int64_t> key_at_;
  std::vector<int64_t> index_of_;
  int64_t size_;
};

// The nearest live cluster after x (SciPy's find_min_dist): {-1, inf} when
// none.
template <typename Real>
std::pair<int64_t, double> NearestAfter(int64_t n, const std::vector<Real>& d,
                                        const std::vector<int64_t>& size,
                                        int64_t x) {
  double best = std::numeric_limits<double>::infinity();
  int64_t y = -1;
  for (int64_t i = x + 1; i < n; ++i) {
    if (size[i] == 0) continue;
    const double value = d[Condensed(n, x, i)];
    if (value < best) {
      best = value;
      y = i;
    }
  }
  return {y, best};
}

// Lance-Williams update for the centroid method, as SciPy writes it.
inline double CentroidUpdate(double d_xi, double d_yi, double d_xy,
                             int64_t size_x, int64_t size_y) {
  const double sx = static_cast<double>(size_x);
  const double sy = static_cast<double>(size_y);
  const double sxy = static_cast<double>(size_x * size_y);
  return std::sqrt((((sx * d_xi * d_xi) + (sy * d_yi * d_yi)) -
                    (sxy * d_xy * d_xy) / (sx + sy)) /
                   (sx + sy));
}

// The generic algorithm with distances stored as `Real` (double: SciPy's
// numbers; float: half the memory for long inputs).
template <typename Real>
std::vector<LinkageMerge> Linkage(std::span<const double> vectors, int64_t n,
                                  int dim, const CancelToken& cancel) {
  // The condensed distance matrix (SciPy's pdist, Euclidean).
  std::vector<Real> d(static_cast<size_t>(n) * (n - 1) / 2);
  for (int64_t i = 0; i < n; ++i) {
    if (i % 256 == 0) cancel.ThrowIfCancelled("clustering");
    const double* a = vectors.data() + i * dim;
    size_t index = Condensed(n, i, i + 1);
    for (int64_t j = i + 1; j < n; ++j, ++index) {
      const double* b = vectors.data() + j * dim;
      double sum = 0.0;
      for (int k = 0; k < dim; ++k) {
        const double diff = a[k] - b[k];
        sum += diff * diff;
      }
      d[index] = static_cast<Real>(std::sqrt(sum));
    }
  }

  std::vector<LinkageMerge> merges(static_cast<size_t>(n - 1));
  std::vector<int64_t> size(n, 1);
  std::vector<int64_t> cluster_id(n);
  for (int64_t i = 0; i < n; ++i) cluster_id[i] = i;
  std::vector<int64_t> neighbor(n - 1);
  std::vector<double> min_dist(n - 1);
  for (int64_t x = 0; x < n - 1; ++x)
    std::tie(neighbor[x], min_dist[x]) = NearestAfter(n, d, size, x);
  KeyedHeap heap(min_dist);

  for (int64_t k = 0; k < n - 1; ++k) {
    if (k % 256 == 0) cancel.ThrowIfCancelled("clustering");
    int64_t x = 0, y = 0;
    double dist = 0.0;
    // The heap holds lower bounds; a stale one is refreshed and retried.
    for (int64_t i = 0; i < n - k; ++i) {
      std::tie(x, dist) = heap.Min();
      y = neighbor[x];
      if (dist == static_cast<double>(d[Condensed(n, x, y)])) break;
      std::tie(y, dist) = NearestAfter(n, d, size, x);
      neighbor[x] = y;
      min_dist[x] = dist;
      heap.Change(x, dist);
    }
    heap.RemoveMin();

    int64_t id_x = cluster_id[x], id_y = cluster_id[y];
    const int64_t nx = size[x], ny = size[y];
    if (id_x > id_y) std::swap(id_x, id_y);
    merges[k] = {id_x, id_y, dist, nx + ny};

    size[x] = 0;
    size[y] = nx + ny;
    cluster_id[y] = n + k;
    for (int64_t z = 0; z < n; ++z) {
      if (size[z] == 0 || z == y) continue;
      d[Condensed(n, z, y)] = static_cast<Real>(CentroidUpdate(
          d[Condensed(n, z, x)], d[Condensed(n, z, y)], dist, nx, ny));
    }
    for (int64_t z = 0; z < x; ++z)
      if (size[z] > 0 && neighbor[z] == x) neighbor[z] = y;
    for (int64_t z = 0; z < y; ++z) {
      if (size[z] == 0) continue;
      const double value = d[Condensed(n, z, y)];
      if (value < min_dist[z]) {
        neighbor[z] = y;
        min_dist[z] = value;
        heap.Change(z, value);
      }
    }
    if (y < n - 1) {
      const auto [z, value] = NearestAfter(n, d, size, y);
      if (z != -1) {
        neighbor[y] = z;
        min_dist[y] = value;
        heap.Change(y, value);
      }
    }
  }
  return merges;
}

}  // namespace

std::vector<LinkageMerge> CentroidLinkageOf(std::span<const double> vectors,
                                            int64_t n, int dim,
                                            const CancelToken& cancel) {
  if (n < 2) return {};
  if (n > kDoubleDistancesUpTo) return Linkage<float>(vectors, n, dim, cancel);
  return Linkage<double>(vectors, n, dim, cancel);
}

std::vector<int> FlatClustersOf(std::span<const LinkageMerge> merges, int64_t n,
                                std::span<const double> heights,
                                double threshold) {
  std::vector<int> labels(static_cast<size_t>(n), 0);
  if (n < 2) return labels;
  VOXPRINT_CHECK(static_cast<int64_t>(merges.size()) == n - 1 &&
                     static_cast<int64_t>(heights.size()) == n - 1,
                 "a dendrogram of N inputs has N - 1 merges");
  // The largest merge height below each node (SciPy's get_max_dist...).
  std::vector<double> max_height(n - 1);
  for (int64_t k = 0; k < n - 1; ++k) {
    double value = heights[k];
    for (int64_t child : {merges[k].first, merges[k].second}) {
      VOXPRINT_CHECK(child >= 0 && child < n + k, "merge of an unmade cluster");
      if (child >= n) value = std::max(value, max_height[child - n]);
    }
    max_height[k] = value;
  }
  // Depth first from the root, as SciPy's cluster_monocrit walks: both
  // subtrees first (left, then right), then the node's own leaves; the
  // highest node within the threshold leads a cluster.
  std::vector<int64_t> stack = {n - 2};
  std::vector<char> visited(n - 1, 0);
  int clusters = 0;
  int64_t leader = -1;
  while (!stack.empty()) {
    const int64_t node = stack.back();
    const int64_t left = merges[node].first, right = merges[node].second;
    if (leader == -1 && max_height[node] <= threshold) {
      leader = node;
      ++clusters;
    }
    if (left >= n && !visited[left - n]) {
      visited[left - n] = 1;
      stack.push_back(left - n);
      continue;
    }
    if (right >= n && !visited[right - n]) {
      visited[right - n] = 1;
      stack.push_back(right - n);
      continue;
    }
    for (int64_t leaf : {left, right}) {
      if (leaf >= n) continue;
      if (leader == -1) ++clusters;
      labels[leaf] = clusters - 1;
    }
    if (leader == node) leader = -1;
    stack.pop_back();
  }
  return labels;
}

}  // namespace voxprint::diarization
