"""Exact k-NN over sharded rows: :func:`knn` and :func:`knn_graph`.

Each rank holds its queries and one shard of the database. The shards travel once around the
ring of ranks (rank r sends to r + 1 while it searches the shard it holds), each rank keeps the
running top-k of its own queries, and candidates are merged by (score, global index). The
library's scores are exact functions of the two rows, whatever else is searched with them, so
the result is bitwise :func:`clipadapt.knn` over the concatenated shards.

Cost per rank: it searches its queries against all N rows (the work of one process divided by
R), sends and receives N - n_r rows, and holds its queries, its shard and one shard in flight
(shards of very different sizes: the largest sets the memory).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clipadapt import _validate
from clipadapt._arrays import METRICS, Metric
from clipadapt.distributed._arrays import Rows, device_of, read_rows, to_library
from clipadapt.distributed._comm import Communicator
from clipadapt.neighbors import knn as single_process_knn

TopK = tuple[torch.Tensor, torch.Tensor]


def knn(queries: Any, database: Any, k: int, *, metric: Metric = "cosine", check_finite: bool = True,
        group: Any = None, timeout: float | None = None) -> tuple[Any, Any]:
    """Exact k nearest rows of the union of every rank's ``database`` shard, for this rank's queries.

    Every rank of ``group`` calls this together, each with its own rows; nothing is gathered
    on one rank. Shard r's rows have the global indices ``offset_r + i``, the offsets being the
    shard sizes summed in rank order, so the result equals
    ``clipadapt.knn(queries, concat(database shards), k, metric=metric)``, indices and scores,
    bit for bit.

    Args:
        queries: [nq, d] float32 / float16 / bfloat16 numpy array or torch tensor (nq may be 0).
        database: [n_r, d] rows of this rank's shard, same dtype and device (n_r may be 0).
        k: neighbours per query, 1 <= k <= the total rows of all shards (a shard may hold fewer).
        metric: ``"cosine"``, ``"ip"`` or ``"l2"``, as :func:`clipadapt.knn`.
        check_finite: screen this rank's queries and shard for NaN/Inf first.
        group: the torch.distributed process group (``None``: the default one). CPU rows need a
            gloo backend, CUDA tensors NCCL (``init_process_group(backend="cpu:gloo,cuda:nccl")``).
        timeout: seconds each exchange may wait for the other ranks (``None``: the group's).

    Returns:
        ``(scores, indices)``: float32 [nq, k] and int64 [nq, k] global indices, best first
        (ties to the smaller global index), in the library and on the device of ``queries``.

    Raises:
        ValueError / TypeError on every rank when any rank's input is bad (the message names
        the rank) or the ranks disagree on ``k``, ``metric``, the dimension or the dtype;
        :class:`~clipadapt.distributed.CollectiveError` when a rank died or timed out.
    """
    comm = Communicator("knn", group, device_of(queries, database), timeout)
    scores, indices, _ = _search(comm, queries, database, k, metric, check_finite, graph=False)
    return scores, indices


@dataclass(frozen=True)
class KnnGraphShard:
    """This rank's rows of the k-NN graph of the union of all shards (fields as :class:`clipadapt.KnnGraph`).

    Attributes:
        scores: float32 [n_r, k] metric values, best first.
        indices: int64 [n_r, k] global neighbour indices of this rank's rows (never the row itself).
        n: nodes of the whole graph (rows of all shards).
        first_row: global index of this rank's row 0 (its rows are ``first_row + arange(n_r)``).
        metric: the metric the graph was built with.
    """

    scores: Any
    indices: Any
    n: int
    first_row: int
    metric: str

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def knn_graph(x: Any, k: int, *, metric: Metric = "cosine", check_finite: bool = True, group: Any = None,
              timeout: float | None = None) -> KnnGraphShard:
    """This rank's rows of the exact k-NN graph of the union of every rank's ``x`` [n_r, d]
    (self excluded): rows ``knn_graph(concat(x shards), k).indices[first_row:first_row + n_r]``
    of :func:`clipadapt.knn_graph`, bit for bit. Arguments as :func:`knn`; 1 <= k < total rows.
    """
    comm = Communicator("knn_graph", group, device_of(x), timeout)
    scores, indices, offsets = _search(comm, x, x, k, metric, check_finite, graph=True)
    return KnnGraphShard(scores=scores, indices=indices, n=int(offsets[-1]), first_row=int(offsets[comm.rank]),
                         metric=metric)


def _search(comm: Communicator, queries: Any, database: Any, k: int, metric: str, check_finite: bool,
            graph: bool) -> tuple[Any, Any, np.ndarray]:
    """The ring search shared by :func:`knn` and :func:`knn_graph` (``graph``: the queries are
    the database rows, each excluded from its own list); also returns the shard offsets."""
    checked: tuple[int, Rows, Rows] | None = None
    error = None
    try:
        checked = _checked_inputs(queries, database, k, metric, check_finite, graph)
    except (TypeError, ValueError) as raised:
        error = raised
    k, q, x = checked if checked else (0, None, None)
    shared = {"k": k, "metric": metric, "dim": x.array.shape[1], "dtype": x.array.dtype,
              "device": x.tensor.device.type} if checked else {}
    sizes = comm.handshake(error, shared, [x.array.shape[0]] if checked else [0])[:, 0]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    available = int(offsets[-1]) - (1 if graph else 0)
    if k > available:
        raise ValueError(f"k: {k} exceeds the {available} candidate rows of all shards together"
                         f"{' (excluding self)' if graph else ''}; lower k or add rows")
    best = _ring_top_k(comm, q.tensor, x.tensor, k, metric, graph, sizes, offsets)
    return to_library(best[0], q.library), to_library(best[1], q.library), offsets


def _checked_inputs(queries: Any, database: Any, k: int, metric: str, check_finite: bool,
                    graph: bool) -> tuple[int, Rows, Rows]:
    _validate.choice(metric, "metric", METRICS)
    k = _validate.integer(k, "k", minimum=1)
    if graph:
        x = q = read_rows(database, "x")
    else:
        q, x = read_rows(queries, "queries"), read_rows(database, "database")
        if q.array.device != x.array.device:
            raise ValueError(f"queries is on {q.array.device} but database is on {x.array.device}; move both to "
                             "the same device")
        if q.array.dtype != x.array.dtype:
            raise TypeError(f"queries and database: dtypes differ ({q.array.dtype} vs {x.array.dtype}); cast one to "
                            "the other")
        if q.array.shape[1] != x.array.shape[1]:
            raise ValueError(f"queries and database: feature dimensions differ ({q.array.shape[1]} vs "
                             f"{x.array.shape[1]})")
    if check_finite:
        if not graph:
            q.check_finite("queries")
        x.check_finite("x" if graph else "database")
    return k, q, x


def _ring_top_k(comm: Communicator, queries: torch.Tensor, shard: torch.Tensor, k: int, metric: str, graph: bool,
                sizes: np.ndarray, offsets: np.ndarray) -> TopK:
    """Every shard passes through this rank once (its own first); the running top-k of the queries."""
    best = _empty_top_k(queries, 0)
    for step in range(comm.world_size):
        source = (comm.rank - step) % comm.world_size
        receive = None
        if step + 1 < comm.world_size:  # the next shard arrives while this one is searched
            receive = comm.pass_along_ring(shard, int(sizes[(comm.rank - step - 1) % comm.world_size]))
        found = comm.guarded(lambda: _shard_top_k(queries, shard, k, metric, graph and step == 0,
                                                  int(offsets[source])))
        if found is not None:
            best = merge_top_k(best, found, k, metric)
        if receive is not None:
            shard = receive()
    return best if queries.shape[0] else _empty_top_k(queries, k)


def _shard_top_k(queries: torch.Tensor, shard: torch.Tensor, k: int, metric: str, own_rows: bool,
                 offset: int) -> TopK | None:
    """The top-k (fewer if the shard is smaller) of the queries in one shard, global ids;
    ``own_rows``: the queries are the shard's rows, each excluded from its own list."""
    rows = shard.shape[0] - (1 if own_rows else 0)
    if rows <= 0 or queries.shape[0] == 0:
        return None
    scores, indices = single_process_knn(queries, shard, min(k, rows), metric=metric, exclude_self=own_rows,
                                         check_finite=False)
    return scores, indices + offset


def _empty_top_k(queries: torch.Tensor, columns: int) -> TopK:
    return (queries.new_empty((queries.shape[0], columns), dtype=torch.float32),
            queries.new_empty((queries.shape[0], columns), dtype=torch.int64))


def merge_top_k(first: TopK, second: TopK, k: int, metric: str) -> TopK:
    """The best ``k`` of two candidate lists per query (scores float32, global ids int64, [nq, *]):
    ordered by score (ascending for ``"l2"``), ties to the smaller id; ids -1 (unfilled slots)
    come after every id."""
    scores, ids = torch.cat([first[0], second[0]], dim=1), torch.cat([first[1], second[1]], dim=1)
    by_id = torch.argsort(torch.where(ids < 0, torch.iinfo(torch.int64).max, ids), dim=1, stable=True)
    scores, ids = scores.gather(1, by_id), ids.gather(1, by_id)
    by_score = torch.argsort(scores, dim=1, stable=True, descending=metric != "l2")
    return scores.gather(1, by_score)[:, :k], ids.gather(1, by_score)[:, :k]
