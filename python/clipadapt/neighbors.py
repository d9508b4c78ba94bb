"""Exact k-nearest neighbours: :func:`knn` and :func:`knn_graph`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from clipadapt import _native, _validate
from clipadapt._arrays import METRICS, Metric, check_row_matrices, to_numpy
from clipadapt._native import _core

__all__ = ["Compute", "KnnGraph", "Metric", "knn", "knn_graph"]

Compute = Literal["exact", "tf32"]
COMPUTE_MODES: tuple[str, ...] = ("exact", "tf32")


def knn(queries: Any, database: Any, k: int, *, metric: Metric = "cosine", exclude_self: bool = False,
        compute: Compute = "exact", check_finite: bool = True) -> tuple[Any, Any]:
    """Exact k nearest database rows of every query row, best first.

    Args:
        queries: [nq, d] float32 / float16 / bfloat16 array (numpy, torch, cupy or any DLPack
            producer), on the CPU or a CUDA device.
        database: [n, d] array of the same dtype and device.
        k: neighbours per query, 1 <= k <= n (n - 1 with ``exclude_self``).
        metric: ``"cosine"`` (normalisation fused, inputs untouched; zero rows score 0),
            ``"ip"`` (inner product) or ``"l2"`` (squared Euclidean, ascending).
        exclude_self: query row i is database row i (same rows, e.g. a graph over x): index i
            is never returned for query i.
        compute: how a GPU multiplies float32 rows: ``"exact"`` (FFMA) or ``"tf32"`` (tensor
            cores). Ignored on the CPU and for float16/bfloat16, which always accumulate in float32.
        check_finite: screen both inputs for NaN/Inf first (one cheap pass).

    Returns:
        ``(scores, indices)``: float32 [nq, k] and int64 [nq, k], in the library and on the
        device of ``queries``. Ties in score go to the smaller database index. Each score is
        exact (float64 from the two rows, rounded once): the same bits on any batch, thread
        count or device.

    Raises:
        TypeError: a dtype other than float32/float16/bfloat16, or the two inputs' dtypes differ.
        ValueError: shapes (not 2-D, empty, different d), k outside [1, n], an unknown metric or
            compute mode, inputs on different devices, or NaN/Inf in an input.

    Cost: 2 nq n d multiply-adds in tiles (sgemm or AVX-512 BF16 on the CPU, tensor cores or
    FFMA on the GPU), plus an exact re-scoring of a few candidates per query. Memory beyond the
    outputs: O(nq + n) plus a tile per thread; never an nq x n matrix.
    """
    _validate.choice(metric, "metric", METRICS)
    _validate.choice(compute, "compute", COMPUTE_MODES)
    k = _validate.integer(k, "k", minimum=1)
    q = _native.as_input(queries, "queries")
    x = _native.as_input(database, "database")
    _native.require_same_device(q, "queries", x, "database")
    check_row_matrices(q, "queries", x, "database")
    available = x.shape[0] - (1 if exclude_self else 0)
    if k > available:
        raise ValueError(f"k: {k} exceeds the {available} candidate rows of database"
                         f"{' (excluding self)' if exclude_self else ''}; lower k or add rows")
    stream = _native.current_stream(q)
    if check_finite:
        _native.check_finite(q, "queries", stream)
        if x.value is not q.value:
            _native.check_finite(x, "database", stream)
    scores = _native.empty(q, (q.shape[0], k), "float32")
    indices = _native.empty(q, (q.shape[0], k), "int64")
    _core.knn_into(_native.capsule(q.value, stream), _native.capsule(x.value, stream), k, metric,
                   bool(exclude_self), compute, _native.capsule(scores, stream),
                   _native.capsule(indices, stream), stream)
    return scores, indices


@dataclass(frozen=True)
class KnnGraph:
    """A directed k-NN graph: row i's neighbours ``indices[i]`` with ``scores[i]``, best first
    (fields in the order :func:`knn` returns them).

    Attributes:
        scores: float32 [n, k] metric values (cosine / inner product, or squared L2).
        indices: int64 [n, k] neighbour ids (never i itself).
        n: number of nodes.
        metric: the metric the graph was built with.
    """

    scores: Any
    indices: Any
    n: int
    metric: str

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def to_csr(self, format: Literal["scipy", "torch"] = "scipy") -> Any:
        """The graph as an n x n CSR matrix with ``scores`` as values (row i holds i's neighbours).

        ``"scipy"`` gives a ``scipy.sparse.csr_matrix`` (data copied to the host),
        ``"torch"`` a ``torch.sparse_csr_tensor`` on the device of the graph's arrays.
        """
        n, k = self.n, self.k
        if k and int(self.indices.min()) < 0:
            raise ValueError("graph: has empty neighbour slots (index -1, from NaN features searched with "
                             "check_finite=False); rebuild it from finite features")
        if format == "torch":
            import torch

            indices = torch.as_tensor(self.indices)
            values = torch.as_tensor(self.scores)
            crow = torch.arange(0, n * k + 1, k, dtype=torch.int64, device=indices.device)
            return torch.sparse_csr_tensor(crow, indices.reshape(-1), values.reshape(-1), size=(n, n),
                                           check_invariants=False)  # valid by construction
        if format == "scipy":
            import scipy.sparse

            indices = to_numpy(self.indices).reshape(-1)
            values = to_numpy(self.scores).reshape(-1)
            indptr = np.arange(0, n * k + 1, k, dtype=np.int64)
            return scipy.sparse.csr_matrix((values, indices, indptr), shape=(n, n))
        raise ValueError(f"format: unknown format {format!r}; use 'scipy' or 'torch'")


def knn_graph(x: Any, k: int, *, metric: Metric = "cosine", compute: Compute = "exact",
              check_finite: bool = True) -> KnnGraph:
    """The exact k-NN graph of the rows of ``x`` [n, d] (self excluded): ``knn(x, x, k, exclude_self=True)``
    held as a :class:`KnnGraph` (scores float32 [n, k], indices int64 [n, k]).

    Arguments, errors and cost as :func:`knn` with nq = n; 1 <= k <= n - 1."""
    scores, indices = knn(x, x, k, metric=metric, exclude_self=True, compute=compute, check_finite=check_finite)
    return KnnGraph(scores=scores, indices=indices, n=int(indices.shape[0]), metric=metric)
