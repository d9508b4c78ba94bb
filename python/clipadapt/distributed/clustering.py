"""k-means and paired k-means over sharded rows: :func:`kmeans` and :func:`paired_kmeans`.

Per iteration each rank assigns its rows (:func:`clipadapt.assign`), takes the per-cluster means
and counts of its rows (the native segmented reduction, over its non-empty clusters only, so
nothing is split locally), and turns them into exact float64 partial sums; the partial sums are
added in rank order (:meth:`Communicator.sum_in_rank_order`) and the counts summed exactly, so
every rank holds the same bits, from which each finishes the update as the native one does
(mean, empty clusters split, unit rows). With one rank the centroids are bitwise those of
:func:`clipadapt.paired_kmeans`; with more they differ by float32 rounding (<= 1e-6 on unit rows).
"""
from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch

from clipadapt import _native, _validate
from clipadapt._arrays import METRICS, Metric
from clipadapt._native import _core
from clipadapt.clustering import (SPHERICAL_METRICS, Init, KMeansResult, assign, cast_like, centroid_shift,
                                  centroids_from_rows, group_by_cluster, initial_centroids, objective, random_rows,
                                  subsample_rows)
from clipadapt.distributed._arrays import as_tensor, device_of, read_rows, to_library
from clipadapt.distributed._comm import Communicator
from clipadapt.distributed._seeding import kmeans_plus_plus
from clipadapt.distributed._shards import Layout, gather_sorted_rows


def kmeans(x: Any, n_clusters: int, *, max_iter: int = 20, tol: float = 0.0, metric: Metric = "cosine",
           init: Init | Any = "kmeans++", seed: int = 0, max_points_per_centroid: int | None = None,
           check_finite: bool = True, group: Any = None, timeout: float | None = None) -> KMeansResult:
    """:func:`clipadapt.kmeans` over the union of every rank's ``x`` [n_r, d] (n_r may be 0).

    Every rank of ``group`` calls it together with its own shard and the same other arguments
    (an ``init`` array must be the same on every rank). The initial rows (``"random"``,
    ``"kmeans++"``) and the sub-sample are drawn from the union exactly as one process draws
    them from the concatenated shards; empty clusters are split as in one process.

    Returns:
        :class:`clipadapt.KMeansResult`: ``centroids`` float32 [K, d] and ``counts`` int64 [K],
        the same bits on every rank and equal (<= 1e-5) to the single-process run;
        ``assignments`` int64 [n_r] for this rank's rows; ``inertia`` and ``splits`` of the
        union; ``n_iter`` the iterations run (the same stopping rule: the shift is computed from
        centroids that every rank holds bit for bit). Arrays in the library and on the device of ``x``.

    Other arguments as :func:`clipadapt.kmeans`; ``group`` and ``timeout`` as
    :func:`clipadapt.distributed.knn`.
    """
    return _paired_kmeans("kmeans", x, x, n_clusters, max_iter, tol, metric, init, seed, max_points_per_centroid,
                          check_finite, group, timeout)


def paired_kmeans(assign_x: Any, update_x: Any, n_clusters: int, *, max_iter: int = 20, tol: float = 0.0,
                  metric: Metric = "cosine", init: Init | Any = "kmeans++", seed: int = 0,
                  max_points_per_centroid: int | None = None, check_finite: bool = True, group: Any = None,
                  timeout: float | None = None) -> KMeansResult:
    """:func:`clipadapt.paired_kmeans` over the union of every rank's pairs: this rank's
    ``assign_x`` [n_r, d] and ``update_x`` [n_r, d] (row i of both is one pair). Results as
    :func:`kmeans`: centroids identical on every rank, assignments of this rank's pairs."""
    return _paired_kmeans("paired_kmeans", assign_x, update_x, n_clusters, max_iter, tol, metric, init, seed,
                          max_points_per_centroid, check_finite, group, timeout)


def _paired_kmeans(operation: str, assign_x: Any, update_x: Any, n_clusters: int, max_iter: int, tol: float,
                   metric: str, init: Any, seed: int, max_points: int | None, check_finite: bool, group: Any,
                   timeout: float | None) -> KMeansResult:
    comm = Communicator(operation, group, device_of(assign_x, update_x, init), timeout)
    arguments, error = None, None
    try:
        arguments = _Arguments(assign_x, update_x, n_clusters, max_iter, tol, metric, init, seed, max_points,
                               check_finite)
    except (TypeError, ValueError) as raised:
        error = raised
    shared = arguments.shared() if arguments else {}
    sizes = comm.handshake(error, shared, [arguments.a.array.shape[0]] if arguments else [0])[:, 0]
    layout = Layout.of_sizes(sizes, comm.rank)
    if arguments.n_clusters > layout.total:
        raise ValueError(f"n_clusters: {arguments.n_clusters} exceeds the {layout.total} rows of all shards; lower "
                         "n_clusters or add rows")
    return _Lloyd(comm, arguments, layout).run()


class _Arguments:
    """One rank's checked arguments (the single-process checks, shard by shard)."""

    def __init__(self, assign_x: Any, update_x: Any, n_clusters: Any, max_iter: Any, tol: Any, metric: Any,
                 init: Any, seed: Any, max_points: Any, check_finite: bool):
        self.metric = _validate.choice(metric, "metric", METRICS)
        self.n_clusters = _validate.integer(n_clusters, "n_clusters", minimum=1)
        self.max_iter = _validate.integer(max_iter, "max_iter", minimum=0)
        self.tol = _validate.real(tol, "tol", at_least=0)
        self.seed = _validate.integer(seed, "seed", minimum=0)
        self.max_points = (None if max_points is None else
                           _validate.integer(max_points, "max_points_per_centroid", minimum=1))
        self.a = read_rows(assign_x, "assign_x")
        self.u = self.a if update_x is assign_x else read_rows(update_x, "update_x")
        _native.require_same_device(self.a.array, "assign_x", self.u.array, "update_x")
        if self.a.array.shape != self.u.array.shape:
            raise ValueError(f"assign_x and update_x: rows are pairs of one dimension, but their shapes differ "
                             f"({self.a.array.shape} vs {self.u.array.shape})")
        if check_finite:
            self.a.check_finite("assign_x")
            if self.u is not self.a:
                self.u.check_finite("update_x")
        self.init = init
        self.given_centroids = None
        if not isinstance(init, str):
            self.given_centroids = as_tensor(initial_centroids(self.a.array, self.n_clusters, metric, init, 0,
                                                               check_finite=check_finite))
        elif init not in ("kmeans++", "random"):
            raise ValueError(f"init: unknown init {init!r}; use 'kmeans++', 'random' or an array [K, d]")

    def shared(self) -> dict[str, Any]:
        """The arguments every rank must agree on (an init array by a checksum of its values)."""
        init = self.init if self.given_centroids is None else \
            f"array crc32 {zlib.crc32(self.given_centroids.cpu().numpy().tobytes())}"
        return {"n_clusters": self.n_clusters, "max_iter": self.max_iter, "tol": self.tol, "metric": self.metric,
                "seed": self.seed,
                "max_points_per_centroid": self.max_points, "init": init, "dim": self.a.array.shape[1],
                "dtypes": [self.a.array.dtype, self.u.array.dtype],
                "device": self.a.tensor.device.type}


class _Lloyd:
    """The iterations of one sharded (paired) k-means run."""

    def __init__(self, comm: Communicator, arguments: _Arguments, layout: Layout):
        self.comm, self.arguments = comm, arguments
        self.spherical = arguments.metric in SPHERICAL_METRICS
        sample = subsample_rows(layout.total, arguments.n_clusters, arguments.max_points, arguments.seed)
        self.train_layout = layout if sample is None else layout.subset(sample)
        local = None if sample is None else torch.as_tensor(layout.local(sample), device=arguments.a.tensor.device)
        self.train_a = arguments.a.tensor if local is None else arguments.a.tensor[local]
        self.train_u = (self.train_a if arguments.u is arguments.a else
                        arguments.u.tensor if local is None else arguments.u.tensor[local])

    def run(self) -> KMeansResult:
        K = self.arguments.n_clusters
        centroids = self._initial_centroids()
        inertia, splits, counts = [], [], None
        for _ in range(self.arguments.max_iter):
            scores, indices = self._assign(self.train_a, centroids)
            inertia.append(self._union_objective(scores))
            sums, counts = self.comm.guarded(lambda: _partial_sums(self.train_u, indices, K))
            previous = centroids
            centroids, counts, split = _finish(self.comm.sum_in_rank_order(sums), self.comm.all_reduce_exact(counts),
                                               self.spherical)
            splits.append(split)
            if centroid_shift(previous, centroids) <= self.arguments.tol:
                break
        scores, assignments = self._assign(self.arguments.a.tensor, centroids)
        inertia.append(self._union_objective(scores))
        if counts is None:
            counts = self.comm.all_reduce_exact(torch.bincount(assignments, minlength=K))
        library = self.arguments.a.library
        return KMeansResult(centroids=to_library(centroids, library), assignments=to_library(assignments, library),
                            inertia=np.array(inertia), counts=to_library(counts, library), splits=splits)

    def _initial_centroids(self) -> torch.Tensor:
        """float32 [K, d], the same on every rank (unit rows for the spherical metrics)."""
        arguments = self.arguments
        if arguments.given_centroids is not None:
            return arguments.given_centroids
        if arguments.init == "random":
            rows = random_rows(self.train_layout.total, arguments.n_clusters, arguments.seed)
        else:
            rows = kmeans_plus_plus(self.comm, self.train_layout, self.train_a, arguments.n_clusters, arguments.metric,
                                    arguments.seed)
        distinct = np.unique(rows)  # gathered in id order, then put in the order drawn
        chosen = gather_sorted_rows(self.comm, self.train_layout, self.train_a, distinct)
        chosen = chosen[torch.as_tensor(np.searchsorted(distinct, rows), device=chosen.device)]
        # In the input's library: numpy and torch round the initial normalisation differently.
        library = arguments.a.library
        return as_tensor(centroids_from_rows(to_library(chosen, library), library, arguments.metric))

    def _assign(self, rows: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Nearest centroid of each local row: (float32 scores or None for an empty shard, int64 indices)."""
        def nearest() -> tuple[torch.Tensor | None, torch.Tensor]:
            if rows.shape[0] == 0:
                return None, torch.zeros(0, dtype=torch.int64, device=rows.device)
            return assign(rows, cast_like(centroids, _native.as_input(rows, "x")), metric=self.arguments.metric,
                          check_finite=False)

        return self.comm.guarded(nearest)

    def _union_objective(self, scores: torch.Tensor | None) -> float:
        """The objective over every rank's rows, added in rank order (the same on every rank)."""
        local = 0.0 if scores is None else objective(scores, self.arguments.metric)
        parts = self.comm.all_gather(torch.tensor([local], dtype=torch.float64))
        return float(sum(float(part.item()) for part in parts))


def _partial_sums(rows: torch.Tensor, indices: torch.Tensor, n_clusters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 [K, d] sums and int64 [K] counts of the local rows of each cluster: the native
    float32 means of the non-empty clusters times their counts (exact in float64)."""
    sums = torch.zeros((n_clusters, rows.shape[1]), dtype=torch.float64, device=rows.device)
    counts = torch.zeros(n_clusters, dtype=torch.int64, device=rows.device)
    if rows.shape[0] == 0:
        return sums, counts
    x = _native.as_input(rows, "update_x")
    order, offsets = group_by_cluster(x, indices, n_clusters)
    filled = offsets[1:] > offsets[:-1]
    compact = torch.cat([offsets[:-1][filled], offsets[-1:]])  # only non-empty clusters: none is split
    means = torch.empty((int(filled.sum()), rows.shape[1]), dtype=torch.float32, device=rows.device)
    filled_counts = torch.empty(means.shape[0], dtype=torch.int64, device=rows.device)
    stream = _native.current_stream(x)
    capsule = _native.capsule
    _core.update_centroids_into(capsule(rows, stream), capsule(order, stream), capsule(compact, stream), False,
                                capsule(means, stream), capsule(filled_counts, stream), stream)
    sums[filled] = means.double() * filled_counts.unsqueeze(1)
    counts[filled] = filled_counts
    return sums, counts


def _finish(sums: torch.Tensor, counts: torch.Tensor, spherical: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The native update's end from the union's sums float64 [K, d] and counts int64 [K]:
    float32 means, then the native finish (empty clusters split, unit rows). Returns
    (centroids, counts after splitting, clusters split)."""
    filled = (counts > 0).unsqueeze(1)
    centroids = torch.where(filled, sums / counts.clamp(min=1).unsqueeze(1), 0.0).float().contiguous()
    counts = counts.clone()
    stream = _native.current_stream(_native.as_input(centroids, "centroids"))
    splits = _core.finish_centroids_into(_native.capsule(centroids, stream), _native.capsule(counts, stream),
                                         spherical, stream)
    return centroids, counts, int(splits)
