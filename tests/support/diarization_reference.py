"""Reference clustering for tests/unit/diarization-clustering-test.cc.

Reads float32 embeddings [n, dim] from a raw file, computes with SciPy and
NumPy (Debian's python3-scipy, python3-numpy), prints JSON:
  linkage:  scipy.cluster.hierarchy.linkage(X, method="centroid"), X as given
  fcluster: {threshold: fcluster(Z, t, criterion="distance") - 1}
  ahc:      {case: labels} by pyannote 3.1's AgglomerativeClustering rules
  spectral: {case: {eigenvalues, labels}} by WeSpeaker's recipe
Usage: diarization_reference.py FILE N DIM CASES_JSON
CASES_JSON: {"thresholds": [...], "ahc": {name: {num, min, max, threshold,
min_cluster_size}}, "spectral": {name: {num, min, max, neighbors}}}
Exit 3 when SciPy or NumPy is missing.
"""
import json
import sys

try:
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.linalg import eigh
    from scipy.spatial.distance import cdist
except ImportError as error:  # the test skips
    print(error)
    sys.exit(3)


def ahc(x, threshold, min_cluster_size, num, lo, hi):
    """pyannote's rules; when they miss the asked-for count, again with
    every cluster counted as large (voxprint's documented fallback)."""
    n = len(x)
    min_size = min(min_cluster_size, max(1, round(0.1 * n)))
    labels = pyannote_ahc(x, threshold, min_size, num, lo, hi)
    found = max(labels) + 1
    if min_size > 1 and (found < min(n, num or lo or 1)
                         or found > min(n, num or hi or n)):
        labels = pyannote_ahc(x, threshold, 1, num, lo, hi)
    return labels


def pyannote_ahc(x, threshold, min_size, num, lo, hi):
    """pyannote 3.1's AgglomerativeClustering.cluster (centroid, cosine)."""
    n = len(x)
    lo_c = max(1, min(n, num or lo or 1))
    hi_c = max(1, min(n, num or hi or n))
    num_clusters = lo_c if lo_c == hi_c else None
    if n == 1:
        return [0]
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    z = linkage(x, method="centroid", metric="euclidean")
    clusters = fcluster(z, threshold, criterion="distance") - 1
    ids, counts = np.unique(clusters, return_counts=True)
    large = ids[counts >= min_size]
    if len(large) < lo_c:
        num_clusters = lo_c
    elif len(large) > hi_c:
        num_clusters = hi_c
    if num_clusters is not None:
        zz = np.copy(z)
        zz[:, 2] = np.arange(n - 1)
        best_it, best_large = n - 1, 1
        for it in np.argsort(np.abs(z[:, 2] - threshold), kind="stable"):
            if zz[it, 3] < min_size:
                continue
            clusters = fcluster(zz, it, criterion="distance") - 1
            ids, counts = np.unique(clusters, return_counts=True)
            large = ids[counts >= min_size]
            if abs(len(large) - num_clusters) < abs(best_large - num_clusters):
                best_it, best_large = it, len(large)
            if len(large) == num_clusters:
                break
        if best_large != num_clusters:
            clusters = fcluster(zz, best_it, criterion="distance") - 1
            ids, counts = np.unique(clusters, return_counts=True)
            large = ids[counts >= min_size]
    if len(large) == 0:
        return [0] * n
    small = ids[counts < min_size]
    if len(small) == 0:
        return clusters.tolist()
    large_c = np.vstack([x[clusters == k].mean(axis=0) for k in large])
    small_c = np.vstack([x[clusters == k].mean(axis=0) for k in small])
    nearest = np.argmin(cdist(large_c, small_c, metric="cosine"), axis=0)
    for s, l in enumerate(nearest):
        clusters[clusters == small[s]] = large[l]
    _, clusters = np.unique(clusters, return_inverse=True)
    return clusters.tolist()


def kmeans(points, k):
    """Lloyd from the farthest-first points from row 0 (ties: lower index)."""
    n = len(points)
    centers = [points[0]]
    nearest = np.full(n, np.inf)
    for c in range(1, k):
        nearest = np.minimum(nearest, ((points - centers[c - 1]) ** 2).sum(1))
        centers.append(points[int(np.argmax(nearest))])
    centers = np.array(centers)
    labels = np.full(n, -1)
    for _ in range(300):
        d = ((points[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
        new = np.argmin(d, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            if np.any(labels == c):
                centers[c] = points[labels == c].mean(axis=0)
    return labels


def spectral(x, num, lo, hi, neighbors):
    """WeSpeaker's spectral clustering (pruned affinity, eigengap)."""
    n = len(x)
    if n <= 2:
        return {"eigenvalues": [], "labels": [0] * n}
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    a = 0.5 * (1.0 + x @ x.T)
    dropped = max(n - neighbors, 2) if n < 1000 else int((1.0 - 0.01) * n)
    for i in range(n):
        order = np.argsort(a[i], kind="stable")
        a[i, order[:dropped]] = 0.0
        a[i, order[dropped:]] = 1.0
    a = 0.5 * (a + a.T)
    a[np.diag_indices(n)] = 0.0
    lap = np.diag(a.sum(axis=1)) - a
    values, vectors = eigh(lap)
    most = min(n - 1, hi or 20)
    least = min(lo or 1, most)
    if num:
        k = min(num, n)
    else:
        gaps = values[least:most + 1] - values[least - 1:most]
        k = int(np.argmax(gaps)) + least
    labels = kmeans(vectors[:, :k], k)
    return {"eigenvalues": values[:max(most + 1, k)].tolist(),
            "labels": labels.tolist()}


def main():
    path, n, dim, cases = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        json.loads(sys.argv[4])
    x = np.fromfile(path, dtype="<f4").reshape(n, dim).astype(np.float64)
    out = {}
    z = linkage(x, method="centroid", metric="euclidean")
    out["linkage"] = z.tolist()
    out["fcluster"] = {str(t): (fcluster(z, t, criterion="distance") - 1).tolist()
                       for t in cases.get("thresholds", [])}
    out["ahc"] = {name: ahc(x, c["threshold"], c["min_cluster_size"],
                            c.get("num"), c.get("min"), c.get("max"))
                  for name, c in cases.get("ahc", {}).items()}
    out["spectral"] = {name: spectral(x, c.get("num"), c.get("min"),
                                      c.get("max"), c["neighbors"])
                       for name, c in cases.get("spectral", {}).items()}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
