"""An IVF index whose rows are spread over the ranks: :class:`ShardedIVFIndex`.

Every rank holds the same centroids and a :class:`clipadapt.IVFIndex` of its own rows under
global ids. A search gathers every rank's queries, each rank searches them all in its rows
(the probed lists are the same everywhere: same centroids, same queries), the partial top-k
go back to the ranks that asked (an all-to-all) and are merged by (score, index), so the result
equals one :class:`clipadapt.IVFIndex` holding the union.

Saved as one ``.npz`` per rank plus a manifest (:data:`MANIFEST_FILE`) that loads as one index
on one machine (:func:`load_as_one`) or shard by shard on a group (:meth:`ShardedIVFIndex.load`).
"""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipadapt import _validate
from clipadapt._arrays import Metric, to_numpy
from clipadapt._files import atomic_path, read_json, write_text_atomically
from clipadapt.distributed._arrays import as_tensor, device_of, read_rows, to_library
from clipadapt.distributed._comm import Communicator
from clipadapt.distributed.neighbors import merge_top_k
from clipadapt.ivf import IVFIndex, check_search

MANIFEST_FILE = "ivf-shards.json"
SHARD_PATTERN = "ivf-shard-*-of-*.npz"  # the names of shard_file
FORMAT, VERSION = "clipadapt-ivf-shards", 1


def shard_file(rank: int, world_size: int) -> str:
    """The file name of rank ``rank``'s part of an index saved by ``world_size`` ranks."""
    return f"ivf-shard-{rank:05d}-of-{world_size:05d}.npz"


class ShardedIVFIndex:
    """Inverted lists over ``centroids`` [K, d] (the same array on every rank), each rank
    holding its own rows. Construction, :meth:`add`, :meth:`search`, :meth:`list_sizes` and
    :meth:`save` are collective: every rank of ``group`` calls them together.

    Args:
        centroids: [K, d] float array, numpy or torch (e.g. from
            :func:`clipadapt.distributed.paired_kmeans`); storage lives in its library and device.
        metric: ``"cosine"``, ``"ip"`` or ``"l2"``, as :class:`clipadapt.IVFIndex`.
        group, timeout: as :func:`clipadapt.distributed.knn`.
    """

    def __init__(self, centroids: Any, *, metric: Metric = "cosine", group: Any = None,
                 timeout: float | None = None):
        self._group, self._timeout = group, timeout
        comm = self._communicator("ShardedIVFIndex", centroids)
        local, error = None, None
        try:
            local = IVFIndex(centroids, metric=metric)
        except (TypeError, ValueError) as raised:
            error = raised
        shared = {"metric": metric, "centroids": _checksum(local.centroids)} if local else {}
        comm.handshake(error, shared)
        self.local = local  # this rank's rows, under their global ids
        self.ntotal = 0

    @classmethod
    def from_local(cls, local: IVFIndex, *, group: Any = None, timeout: float | None = None) -> "ShardedIVFIndex":
        """A sharded index whose part on this rank is ``local`` (rows already under global ids;
        the same centroids on every rank). Collective."""
        index = cls(local.centroids, metric=local.metric, group=group, timeout=timeout)
        index.local = local
        comm = index._communicator("ShardedIVFIndex.from_local", local.centroids)
        index.ntotal = int(comm.handshake(None, {}, [local.ntotal]).sum())
        return index

    @property
    def metric(self) -> str:
        return self.local.metric

    @property
    def n_lists(self) -> int:
        return self.local.n_lists

    @property
    def centroids(self) -> Any:
        return self.local.centroids

    def add(self, x: Any, indices: Any = None, *, check_finite: bool = True) -> "ShardedIVFIndex":
        """Add this rank's rows ``x`` [n_r, d] (n_r may be 0). ``indices`` int64 [n_r] (given on
        every rank or on none) default to global consecutive numbers: the rows of all ranks, in
        rank order, after the rows already added. ``check_finite`` as :meth:`clipadapt.IVFIndex.add`."""
        comm = self._communicator("ShardedIVFIndex.add", x)
        rows, given, error = None, None, None
        try:
            rows = read_rows(x, "x")
            given = None if indices is None else np.asarray(to_numpy(indices, "indices"))
            if given is not None and given.shape != (rows.array.shape[0],):
                raise ValueError(f"indices: has shape {given.shape} for {rows.array.shape[0]} rows; give one int64 "
                                 "index per row")
        except (TypeError, ValueError) as raised:
            error = raised
        shared = ({"indices given": indices is not None, "dim": rows.array.shape[1], "dtype": rows.array.dtype}
                  if rows else {})
        sizes = comm.handshake(error, shared, [rows.array.shape[0]] if rows else [0])[:, 0]
        if given is None:
            first = self.ntotal + int(sizes[:comm.rank].sum())
            given = np.arange(first, first + rows.array.shape[0], dtype=np.int64)

        def store() -> None:
            if rows.array.shape[0]:  # IVFIndex.add refuses no rows
                self.local.add(rows.array.value, given, check_finite=check_finite)

        comm.guarded(store)
        self.ntotal += int(sizes.sum())
        return self

    def search(self, queries: Any, k: int, nprobe: int = 8, *, check_finite: bool = True) -> tuple[Any, Any]:
        """Top-k ``(scores float32 [nq, k], indices int64 [nq, k])`` of this rank's ``queries``
        [nq, d] (nq may be 0) within their ``nprobe`` nearest lists over the rows of every
        rank, as :meth:`clipadapt.IVFIndex.search` over the union: best first, ties to the
        smaller index, -1 where the probed lists hold fewer than k rows. ``check_finite``
        screens this rank's queries for NaN/Inf first."""
        comm = self._communicator("ShardedIVFIndex.search", queries)
        q, error = None, None
        try:
            k = _validate.integer(k, "k", minimum=1)
            nprobe = _validate.integer(nprobe, "nprobe", minimum=1)
            q = read_rows(queries, "queries")
            if check_finite:
                q.check_finite("queries")
        except (TypeError, ValueError) as raised:
            error = raised
        shared = {"k": k, "nprobe": nprobe, "dim": q.array.shape[1], "dtype": q.array.dtype} if q else {}
        sizes = comm.handshake(error, shared, [q.array.shape[0]] if q else [0])[:, 0]
        check_search(k, nprobe, rows=self.ntotal, lists=self.n_lists)  # the union's size, the same on every rank
        everyone = comm.all_gather_rows(q.tensor, sizes.tolist())
        scores, indices = comm.guarded(lambda: self._local_top_k(everyone, k, nprobe))
        answers = comm.all_to_all_rows(list(_pack(scores, indices).split(sizes.tolist())),
                                       [int(sizes[comm.rank])] * comm.world_size)
        best = _unpack(answers[0], k)
        for answer in answers[1:]:
            best = merge_top_k(best, _unpack(answer, k), k, self.metric)
        return to_library(best[0], q.library), to_library(best[1], q.library)

    def list_sizes(self) -> np.ndarray:
        """Rows per inverted list over every rank, int64 [K] (host)."""
        comm = self._communicator("ShardedIVFIndex.list_sizes", self.centroids)
        comm.handshake(None, {})
        return comm.all_reduce_exact(torch.from_numpy(self.local.list_sizes())).cpu().numpy()

    def save(self, directory: str | os.PathLike) -> None:
        """Write this rank's part to ``directory`` (shared by every rank) as :func:`shard_file`,
        and, on rank 0 once every part is written, the manifest :data:`MANIFEST_FILE`."""
        comm = self._communicator("ShardedIVFIndex.save", self.centroids)
        out = Path(directory)
        error = None
        try:
            out.mkdir(parents=True, exist_ok=True)
            with atomic_path(out / shard_file(comm.rank, comm.world_size)) as partial:
                self.local.save(partial)
        except (OSError, TypeError) as raised:
            error = raised
        sizes = comm.handshake(error, {}, [self.local.ntotal])[:, 0]
        if comm.rank == 0:
            manifest = {"format": FORMAT, "version": VERSION, "metric": self.metric, "n_lists": self.n_lists,
                        "ntotal": int(sizes.sum()),
                        "shards": [{"file": shard_file(rank, comm.world_size), "rows": int(rows)}
                                   for rank, rows in enumerate(sizes)]}
            write_text_atomically(out / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
        comm.barrier()

    @classmethod
    def load(cls, directory: str | os.PathLike, *, group: Any = None, timeout: float | None = None,
             device: str = "cpu") -> "ShardedIVFIndex":
        """Read an index saved by :meth:`save` by any number of ranks: each rank loads a
        contiguous run of the saved parts (torch tensors on ``device``; numpy arrays for
        ``"cpu"``). Collective."""
        comm = Communicator("ShardedIVFIndex.load", group, torch.device(device), timeout)
        local, error = None, None
        try:
            local = _load_part(Path(directory), comm.rank, comm.world_size, device)
        except (OSError, ValueError) as raised:
            error = raised
        comm.handshake(error, {})
        return cls.from_local(local, group=group, timeout=timeout)

    def _local_top_k(self, queries: torch.Tensor, k: int, nprobe: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Every query's top-k among this rank's rows, padded with empty slots to k columns."""
        width = min(k, self.local.ntotal)
        scores = torch.full((queries.shape[0], k), -torch.inf if self.metric != "l2" else torch.inf,
                            dtype=torch.float32, device=queries.device)
        indices = torch.full((queries.shape[0], k), -1, dtype=torch.int64, device=queries.device)
        if width and queries.shape[0]:
            library = "numpy" if isinstance(self.local.centroids, np.ndarray) else "torch"  # where the index lives
            # Every rank screened its own queries.
            found_scores, found_indices = self.local.search(to_library(queries, library), width, nprobe,
                                                            check_finite=False)
            scores[:, :width], indices[:, :width] = as_tensor(found_scores), as_tensor(found_indices)
        return scores, indices

    def _communicator(self, operation: str, *arrays: Any) -> Communicator:
        return Communicator(operation, self._group, device_of(*arrays), self._timeout)


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an index saved by :meth:`ShardedIVFIndex.save` in ``directory``."""
    file = Path(directory) / MANIFEST_FILE
    manifest = read_json(file, "write the index again (ShardedIVFIndex.save)")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{file}: not a {FORMAT} version {VERSION} file")
    return manifest


def load_as_one(directory: str | os.PathLike) -> IVFIndex:
    """The index saved by :meth:`ShardedIVFIndex.save` in ``directory`` as one
    :class:`clipadapt.IVFIndex` (host arrays): the same lists, rows and ids, stored in the same
    order, as one process adding the union (default ids) builds."""
    manifest = read_manifest(directory)
    parts = [IVFIndex.load(Path(directory) / shard["file"]) for shard in manifest["shards"]]
    index = _concatenated(parts)
    if index.ntotal != manifest["ntotal"]:
        raise ValueError(f"{Path(directory) / MANIFEST_FILE}: lists {manifest['ntotal']} rows but its shards hold "
                         f"{index.ntotal}; write the index again")
    return index


def _load_part(directory: Path, rank: int, world_size: int, device: str) -> IVFIndex:
    """Rank ``rank``'s contiguous run of the saved parts as one index, its arrays on ``device``."""
    files = [directory / shard["file"] for shard in read_manifest(directory)["shards"]]
    run = np.array_split(np.arange(len(files)), world_size)[rank]
    parts = [IVFIndex.load(files[shard]) for shard in run] or [_without_rows(IVFIndex.load(files[0]))]
    index = _concatenated(parts)
    return index if device == "cpu" else _moved(index, device)


def _concatenated(parts: list[IVFIndex]) -> IVFIndex:
    """One index holding the rows of ``parts`` (same centroids), in index order within each list:
    the order in which one process stores the union added with consecutive indices, in any
    number of ``add`` calls."""
    filled = [_stored(part) for part in parts if part.ntotal]
    if not filled:
        return _without_rows(parts[0])
    vectors, indices, lists = (np.concatenate(arrays) for arrays in zip(*filled))
    order = np.argsort(indices, kind="stable")
    return IVFIndex.from_lists(parts[0].centroids, vectors[order], lists[order], indices[order],
                               metric=parts[0].metric)


def _without_rows(index: IVFIndex) -> IVFIndex:
    return IVFIndex(index.centroids, metric=index.metric)


def _stored(index: IVFIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An index's rows, indices and lists as it stores them (grouped by list), on the host."""
    vectors, indices, offsets = (to_numpy(array) for array in index.inverted_lists())
    return vectors, indices, np.repeat(np.arange(index.n_lists, dtype=np.int64), np.diff(offsets))


def _moved(index: IVFIndex, device: str) -> IVFIndex:
    centroids = torch.from_numpy(np.asarray(index.centroids)).to(device)
    if not index.ntotal:
        return IVFIndex(centroids, metric=index.metric)
    vectors, indices, lists = (torch.from_numpy(array).to(device) for array in _stored(index))
    return IVFIndex.from_lists(centroids, vectors, lists, indices, metric=index.metric)


def _checksum(centroids: Any) -> int:
    return zlib.crc32(np.ascontiguousarray(to_numpy(centroids)).tobytes())


def _pack(scores: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """float32 scores and int64 indices [n, k] as one byte row per query, for one exchange."""
    return torch.cat([scores.contiguous().view(torch.uint8), indices.contiguous().view(torch.uint8)], dim=1)


def _unpack(packed: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    scores, indices = (part.clone(memory_format=torch.contiguous_format) for part in packed.split([4 * k, 8 * k], 1))
    return scores.view(torch.float32), indices.view(torch.int64)  # copies: a view of packed is not 8-byte aligned
