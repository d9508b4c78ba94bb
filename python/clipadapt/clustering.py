"""k-means, paired k-means and nearest-centroid assignment: :func:`kmeans`, :func:`paired_kmeans`, :func:`assign`.

Assignment is the k = 1 case of the fused k-NN kernel (never an n x K matrix); the centroid
update is a segmented reduction over rows grouped by cluster (no float atomics), so a run is
bitwise reproducible on a given device and thread count.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from clipadapt import _native, _validate
from clipadapt._arrays import METRICS, Metric, check_row_matrices, to_numpy
from clipadapt._native import _core
from clipadapt.neighbors import knn

__all__ = ["Init", "KMeansResult", "assign", "kmeans", "paired_kmeans"]

Init = Literal["kmeans++", "random"]
SPHERICAL_METRICS: tuple[str, ...] = ("cosine", "ip")


def assign(x: Any, centroids: Any, *, metric: Metric = "cosine", check_finite: bool = True,
           chunk_rows: int = 1 << 20) -> tuple[Any, Any]:
    """Nearest centroid of every row: ``(scores float32 [n], indices int64 [n])``, ties to the lower index.

    ``x`` [n, d] and ``centroids`` [K, d] share a dtype; the scores are the metric values
    (cosine / inner product, or squared L2 distance). Normally both share a device too. The
    one exception: ``x`` on the host (numpy or torch) with torch ``centroids`` on a GPU streams
    ``x`` through the GPU in chunks of ``chunk_rows`` (pinned double buffers, copies overlapped
    with compute), so n may exceed GPU memory; the results then come back on the host.
    ``check_finite`` screens both arrays for NaN/Inf first.
    """
    _validate.choice(metric, "metric", METRICS)
    rows, means = _native.as_input(x, "x"), _native.as_input(centroids, "centroids")
    chunk_rows = _validate.integer(chunk_rows, "chunk_rows", minimum=1)
    check_row_matrices(rows, "x", means, "centroids")
    if check_finite:
        for array, name in ((rows, "x"), (means, "centroids")):
            _native.check_finite(array, name, _native.current_stream(array))
    if not rows.is_cuda and means.is_cuda and means.library == "torch":
        return _assign_streamed(rows.value, means.value, metric, chunk_rows)
    _native.require_same_device(rows, "x", means, "centroids")
    scores, indices = knn(rows.value, means.value, 1, metric=metric, check_finite=False)
    return scores[:, 0], indices[:, 0]


def _assign_streamed(x: Any, centroids: Any, metric: str, chunk_rows: int) -> tuple[Any, Any]:
    import torch

    host = torch.as_tensor(x)
    n, d = host.shape
    device = centroids.device
    compute, copier = torch.cuda.current_stream(device), torch.cuda.Stream(device)
    chunk = max(1, min(int(chunk_rows), n))
    pinned = [torch.empty((chunk, d), dtype=host.dtype, pin_memory=True) for _ in range(2)]
    staged = [torch.empty((chunk, d), dtype=host.dtype, device=device) for _ in range(2)]
    consumed = [torch.cuda.Event() for _ in range(2)]  # compute finished with staged[b]
    scores = torch.empty(n, dtype=torch.float32, pin_memory=True)
    indices = torch.empty(n, dtype=torch.int64, pin_memory=True)
    for step, start in enumerate(range(0, n, chunk)):
        stop, b = min(n, start + chunk), step % 2
        rows = stop - start
        copier.synchronize()  # pinned[b]'s previous copy to the device has finished
        pinned[b][:rows].copy_(host[start:stop])
        with torch.cuda.stream(copier):
            copier.wait_event(consumed[b])
            staged[b][:rows].copy_(pinned[b][:rows], non_blocking=True)
            arrived = copier.record_event()
        compute.wait_event(arrived)
        chunk_scores, chunk_indices = knn(staged[b][:rows], centroids, 1, metric=metric, check_finite=False)
        scores[start:stop].copy_(chunk_scores[:, 0], non_blocking=True)
        indices[start:stop].copy_(chunk_indices[:, 0], non_blocking=True)
        consumed[b].record(compute)
    compute.synchronize()
    if isinstance(x, np.ndarray):
        return scores.numpy(), indices.numpy()
    return scores, indices


@dataclass(frozen=True)
class KMeansResult:
    """Output of :func:`kmeans` / :func:`paired_kmeans`, in the library and on the device of the input.

    Attributes:
        centroids: float32 [K, d] (unit rows for the cosine and inner-product metrics).
        assignments: int64 [n], nearest final centroid of each (assignment) row.
        inertia: float64 [n_iter + 1]: entry i is the objective of the assignment that starts
            iteration i, the last one that of ``assignments``. Objective: sum of squared
            distances (l2) or of 2 - 2 score (cosine, ip: squared chordal distance on unit rows).
        counts: int64 [K] rows per cluster in the last update (after splitting).
        splits: empty clusters re-seeded by splitting, per iteration.
    """

    centroids: Any
    assignments: Any
    inertia: np.ndarray
    counts: Any
    splits: list[int] = field(default_factory=list)

    @property
    def n_iter(self) -> int:
        """Iterations run: ``max_iter``, or fewer when the centroids converged (``tol``)."""
        return len(self.splits)


def kmeans(x: Any, n_clusters: int, *, max_iter: int = 20, tol: float = 0.0, metric: Metric = "cosine",
           init: Init | Any = "kmeans++", seed: int = 0, max_points_per_centroid: int | None = None,
           check_finite: bool = True) -> KMeansResult:
    """Lloyd's k-means on the rows of ``x`` [n, d] (float32 / float16 / bfloat16; spherical for
    ``"cosine"`` / ``"ip"``).

    Args:
        n_clusters: K, 1 <= K <= n.
        max_iter: at most this many assignment + update rounds.
        tol: stop after the round whose update moved the centroids by at most ``tol`` in total
            (sum over centroids of the squared Euclidean shift, scikit-learn's rule). The default
            0 stops only at a fixed point, where further rounds would change nothing.
        init: ``"kmeans++"`` (D^2 seeding), ``"random"`` (K distinct rows) or an array [K, d]
            of initial centroids.
        seed: an integer >= 0; seeds the initialisation and the sub-sample.
        max_points_per_centroid: None (train on every row), or an integer >= 1: train on a
            seeded sub-sample of K * this many rows (as faiss does), then assign every row.
        check_finite: screen the rows (and an ``init`` array) for NaN/Inf first.

    Returns:
        :class:`KMeansResult`, with ``n_iter`` the rounds run.

    Raises:
        TypeError: an unsupported dtype, or ``init`` rows of another dtype.
        ValueError: n_clusters outside [1, n], an unknown metric or init, a negative seed,
            an ``init`` array of the wrong shape, or NaN/Inf in the rows.

    Cost: per round, one exact nearest-centroid search (2 n K d multiply-adds, as :func:`knn`
    with k = 1) and one pass over the rows for the update. Memory: the centroids, 16 n bytes of
    assignments and grouping, no n x K matrix.
    """
    return paired_kmeans(x, x, n_clusters, max_iter=max_iter, tol=tol, metric=metric, init=init, seed=seed,
                         max_points_per_centroid=max_points_per_centroid, check_finite=check_finite)


def paired_kmeans(assign_x: Any, update_x: Any, n_clusters: int, *, max_iter: int = 20, tol: float = 0.0,
                  metric: Metric = "cosine", init: Init | Any = "kmeans++", seed: int = 0,
                  max_points_per_centroid: int | None = None, check_finite: bool = True) -> KMeansResult:
    """k-means over pairs: rows are assigned by ``assign_x`` (e.g. paired images), centroids are
    the (renormalised) means of the matching ``update_x`` rows (e.g. captions) and live in that space.

    Initial centroids are rows of ``assign_x`` (the first assignment compares them with it).
    With ``update_x is assign_x`` this is :func:`kmeans`. Sub-sampling keeps pairs aligned.
    Arguments as in :func:`kmeans`; ``assign_x`` and ``update_x`` are [n, d] on one device.
    """
    _validate.choice(metric, "metric", METRICS)
    a = _native.as_input(assign_x, "assign_x")
    u = a if update_x is assign_x else _native.as_input(update_x, "update_x")
    n_clusters = _validate.integer(n_clusters, "n_clusters", minimum=1)
    max_iter = _validate.integer(max_iter, "max_iter", minimum=0)
    tol = _validate.real(tol, "tol", at_least=0)
    seed = _validate.integer(seed, "seed", minimum=0)
    if max_points_per_centroid is not None:
        max_points_per_centroid = _validate.integer(max_points_per_centroid, "max_points_per_centroid", minimum=1)
    _check_pair(a, u, n_clusters)
    if check_finite:
        stream = _native.current_stream(a)
        _native.check_finite(a, "assign_x", stream)
        if u is not a:
            _native.check_finite(u, "update_x", stream)
    train_a, train_u = _subsample(a, u, n_clusters, max_points_per_centroid, seed)
    centroids = initial_centroids(train_a, n_clusters, metric, init, seed, check_finite=check_finite)
    inertia, splits = [], []
    for _ in range(max_iter):
        scores, indices = assign(train_a.value, cast_like(centroids, train_a), metric=metric, check_finite=False)
        inertia.append(objective(scores, metric))
        previous = centroids
        centroids, counts, split = _update(train_u, indices, n_clusters, metric in SPHERICAL_METRICS)
        splits.append(split)
        if centroid_shift(previous, centroids) <= tol:
            break
    scores, assignments = assign(a.value, cast_like(centroids, a), metric=metric, check_finite=False)
    inertia.append(objective(scores, metric))
    if not splits:
        _, offsets = group_by_cluster(a, assignments, n_clusters)
        counts = offsets[1:] - offsets[:-1]
    return KMeansResult(centroids=centroids, assignments=assignments, inertia=np.array(inertia), counts=counts,
                        splits=splits)


def _check_pair(a: _native.Array, u: _native.Array, n_clusters: int) -> None:
    _native.require_same_device(a, "assign_x", u, "update_x")
    if a.shape[0] != u.shape[0]:
        raise ValueError(f"assign_x and update_x: rows are pairs, but they have {a.shape[0]} and {u.shape[0]} rows")
    if a.shape[1] != u.shape[1]:
        # The centroids are means of update_x rows and are compared with assign_x rows.
        raise ValueError(f"assign_x and update_x: dimensions differ ({a.shape[1]} vs {u.shape[1]}); pair rows of "
                         "one embedding space")
    if a.shape[1] == 0:
        raise ValueError(f"assign_x: empty array of shape {a.shape}; need at least one column")
    if n_clusters > a.shape[0]:
        raise ValueError(f"n_clusters: {n_clusters} exceeds the {a.shape[0]} rows; lower n_clusters or add rows")


def _take_rows(array: _native.Array, rows: np.ndarray) -> Any:
    if array.library == "torch":
        import torch

        return array.value[torch.as_tensor(rows, device=array.value.device)]
    xp = _native.namespace(array.library)
    return array.value[xp.asarray(rows)]


def subsample_rows(n: int, n_clusters: int, max_points: int | None, seed: int) -> np.ndarray | None:
    """The sorted rows k-means trains on out of ``n`` (``None``: all of them)."""
    if max_points is None or n <= n_clusters * max_points:
        return None
    return np.sort(np.random.default_rng([seed, 1]).choice(n, n_clusters * max_points, replace=False))


def random_rows(n: int, n_clusters: int, seed: int) -> np.ndarray:
    """The sorted rows of the ``"random"`` initialisation out of ``n``."""
    return np.sort(np.random.default_rng(seed).choice(n, n_clusters, replace=False))


def _subsample(a: _native.Array, u: _native.Array, n_clusters: int, max_points: int | None, seed: int):
    rows = subsample_rows(a.shape[0], n_clusters, max_points, seed)
    if rows is None:
        return a, u
    sub_a = _native.as_input(_take_rows(a, rows), "assign_x")
    return sub_a, (sub_a if u is a else _native.as_input(_take_rows(u, rows), "update_x"))


def initial_centroids(a: _native.Array, n_clusters: int, metric: str, init: Any, seed: int, *,
                      check_finite: bool = True) -> Any:
    """float32 [K, d] in a's library and device (unit rows for spherical metrics)."""
    if isinstance(init, str):
        if init == "random":
            rows = random_rows(a.shape[0], n_clusters, seed)
        elif init == "kmeans++":
            rows = _kmeans_plus_plus(a, n_clusters, metric, seed)
        else:
            raise ValueError(f"init: unknown init {init!r}; use 'kmeans++', 'random' or an array [K, d]")
        return centroids_from_rows(_take_rows(a, rows), a.library, metric)
    given = _native.as_input(init, "init")
    _native.require_same_device(a, "assign_x", given, "init")
    if given.shape != (n_clusters, a.shape[1]):
        raise ValueError(f"init: expected shape ({n_clusters}, {a.shape[1]}), got {given.shape}")
    if check_finite:
        _native.check_finite(given, "init", _native.current_stream(given))
    return centroids_from_rows(_native.astype(given.value, given.library, "float32", copy=True), a.library, metric)


def centroids_from_rows(rows: Any, library: str, metric: str) -> Any:
    """Initial centroids from chosen rows: float32, unit rows for the spherical metrics."""
    centroids = _native.astype(rows, library, "float32")
    return _native.normalize_rows(centroids, library) if metric in SPHERICAL_METRICS else centroids


def _kmeans_plus_plus(a: _native.Array, n_clusters: int, metric: str, seed: int) -> np.ndarray:
    chosen = _native.empty(a, (n_clusters,), "int64")
    stream = _native.current_stream(a)
    _core.kmeans_plus_plus_into(_native.capsule(a.value, stream), metric, seed % 2**64,
                                _native.capsule(chosen, stream), stream)
    return to_numpy(chosen)


def cast_like(centroids: Any, x: _native.Array) -> Any:
    """float32 ``centroids`` in the dtype of the rows ``x`` they are compared with."""
    return centroids if x.dtype == "float32" else _native.astype(centroids, x.library, x.dtype)


def objective(scores: Any, metric: str) -> float:
    """The k-means objective of an assignment from its float32 ``scores`` [n] (see :class:`KMeansResult`)."""
    values = to_numpy(scores).astype(np.float64)
    return float(values.sum() if metric == "l2" else (2.0 - 2.0 * values).sum())


def centroid_shift(previous: Any, current: Any) -> float:
    """How far an update moved the centroids: sum of the squared Euclidean shifts, float32 [K, d]
    arrays of one library (summed in float64, so a fixed point reads exactly 0)."""
    if type(current).__module__.startswith("torch"):
        return float((current.double() - previous.double()).square().sum())
    return float(((current.astype(np.float64) - previous.astype(np.float64)) ** 2).sum())


def group_by_cluster(x: _native.Array, indices: Any, n_clusters: int) -> tuple[Any, Any]:
    """The rows of ``x`` grouped by their cluster ``indices`` int64 [n] (a stable counting sort):
    ``(order int64 [n], offsets int64 [K + 1])``, cluster c's rows ``order[offsets[c]:offsets[c + 1]]``."""
    order = _native.empty(x, (x.shape[0],), "int64")
    offsets = _native.empty(x, (n_clusters + 1,), "int64")
    stream = _native.current_stream(x)
    _core.group_by_cluster_into(_native.capsule(indices, stream), n_clusters, _native.capsule(order, stream),
                                _native.capsule(offsets, stream), stream)
    return order, offsets


def _update(u: _native.Array, indices: Any, n_clusters: int, spherical: bool) -> tuple[Any, Any, int]:
    order, offsets = group_by_cluster(u, indices, n_clusters)
    centroids = _native.empty(u, (n_clusters, u.shape[1]), "float32")
    counts = _native.empty(u, (n_clusters,), "int64")
    stream = _native.current_stream(u)
    capsule = _native.capsule
    split = _core.update_centroids_into(capsule(u.value, stream), capsule(order, stream), capsule(offsets, stream),
                                        spherical, capsule(centroids, stream), capsule(counts, stream), stream)
    return centroids, counts, int(split)
