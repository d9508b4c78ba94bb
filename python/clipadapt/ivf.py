"""An inverted-file (IVF) index over fixed centroids, exact within the probed lists: :class:`IVFIndex`."""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipadapt import _native, _validate
from clipadapt._arrays import METRICS, Metric, as_library, to_numpy
from clipadapt._native import _core
from clipadapt.clustering import assign, cast_like, group_by_cluster
from clipadapt.neighbors import knn

__all__ = ["IVFIndex"]

# Rows assigned per step when adding from a file, so a memory-mapped corpus is streamed.
_ADD_CHUNK_ROWS = 1 << 18
# The arrays of a file written by IVFIndex.save ("ids" and "lists" are the names of the first
# version of the format, which this one keeps, so every saved index still loads).
_SAVED_ROWS = ("vectors", "ids", "lists")


@dataclass(frozen=True)
class _Segment:
    """Rows added together, grouped by list: list l's rows are ``vectors[offsets[l]:offsets[l + 1]]``
    (in the order they were added), with their ``indices`` and squared norms (computed once, as
    every exact score computes them, instead of at each search); arrays in the index's storage
    library."""

    vectors: Any  # [m, d]
    indices: Any  # int64 [m]
    offsets: Any  # int64 [K + 1]
    row_norms: Any  # float64 [m]

    @property
    def list_sizes(self) -> np.ndarray:
        return np.diff(to_numpy(self.offsets))


def _squared_norms(rows: Any) -> Any:
    """float64 [m], in the rows' library and device: each row's squared norm as every exact
    score computes it."""
    x = _native.as_input(rows, "x")
    norms = _native.empty(x, (x.shape[0],), "float64")
    stream = _native.current_stream(x)
    _core.squared_norms_into(_native.capsule(x.value, stream), _native.capsule(norms, stream), stream)
    return norms


def check_search(k: int, nprobe: int, *, rows: int, lists: int) -> None:
    """The refusals of a search for k rows in nprobe of ``lists`` lists holding ``rows`` rows in all."""
    if rows == 0:
        raise ValueError("index: is empty; add rows before searching")
    if k > rows:
        raise ValueError(f"k: {k} exceeds the {rows} rows in the index; lower k")
    if nprobe > lists:
        raise ValueError(f"nprobe: {nprobe} exceeds the {lists} lists; lower nprobe")


class IVFIndex:
    """Inverted lists over ``centroids`` [K, d] (e.g. from :func:`clipadapt.paired_kmeans`).

    ``add`` puts every database row in the list of its nearest centroid (the training rule);
    ``search`` probes each query's ``nprobe`` nearest centroids and returns the exact top-k
    among the rows of those lists. Storage lives in the library and on the device of the
    centroids; with ``nprobe = K`` the result equals exact search.

    Each ``add`` keeps its rows as one more segment, grouped by list (work and memory in
    proportion to the rows added, whatever the index holds); the next search packs the segments
    into one array grouped by list, once, and then scans it. Within a list, rows keep the order
    in which they were added.

    Args:
        centroids: [K, d] float32 / float16 / bfloat16 array (numpy, torch or cupy, CPU or CUDA).
        metric: ``"cosine"``, ``"ip"`` or ``"l2"``, for assigning rows and for search.
        check_finite: screen the centroids for NaN/Inf (a NaN centroid attracts no row or every row).
    """

    def __init__(self, centroids: Any, *, metric: Metric = "cosine", check_finite: bool = True):
        self.metric = _validate.choice(metric, "metric", METRICS)
        self._centroids = _native.as_input(centroids, "centroids")
        if 0 in self._centroids.shape:
            raise ValueError(f"centroids: empty array of shape {self._centroids.shape}; need at least one centroid "
                             "and one column")
        if check_finite:
            _native.check_finite(self._centroids, "centroids", _native.current_stream(self._centroids))
        self._segments: list[_Segment] = []
        self._dtype: str | None = None  # of the stored rows, fixed by the first add

    @property
    def centroids(self) -> Any:
        return self._centroids.value

    @property
    def n_lists(self) -> int:
        return self._centroids.shape[0]

    @property
    def ntotal(self) -> int:
        return sum(int(segment.indices.shape[0]) for segment in self._segments)

    def list_sizes(self) -> np.ndarray:
        """Rows per inverted list, int64 [K] (host)."""
        sizes = np.zeros(self.n_lists, dtype=np.int64)
        for segment in self._segments:
            sizes += segment.list_sizes
        return sizes

    def add(self, x: Any, indices: Any = None, *, check_finite: bool = True) -> "IVFIndex":
        """Add rows ``x`` [n, d] (an array of the centroids' device, or the path of a ``.npy``
        file, read memory-mapped in chunks), each to the list of its nearest centroid.

        Args:
            x: rows of the centroids' dimension, in the dtype of the rows already added.
            indices: int64 [n], what :meth:`search` returns for these rows; default the
                consecutive numbers after the rows already added.
            check_finite: screen ``x`` for NaN/Inf first.

        Returns:
            The index itself.
        """
        if isinstance(x, (str, os.PathLike)):
            mapped = np.load(os.fspath(x), mmap_mode="r")
            if mapped.ndim != 2 or mapped.shape[0] == 0:
                raise ValueError(f"x: {os.fspath(x)} holds an array of shape {mapped.shape}; give a file of rows "
                                 "[n >= 1, d]")
            for start in range(0, mapped.shape[0], _ADD_CHUNK_ROWS):
                chunk_indices = None if indices is None else indices[start:start + _ADD_CHUNK_ROWS]
                chunk = self._from_host(np.ascontiguousarray(mapped[start:start + _ADD_CHUNK_ROWS]))
                self.add(chunk, chunk_indices, check_finite=check_finite)
            self._packed()  # the file is one batch: pack it now, not at the first search
            return self
        rows = self._checked_rows(x)
        _, lists = assign(rows.value, cast_like(self._centroids.value, rows), metric=self.metric,
                          check_finite=check_finite)
        self._append(rows, self._new_indices(rows, indices), lists)
        return self

    @classmethod
    def from_lists(cls, centroids: Any, x: Any, lists: Any, indices: Any = None, *, metric: Metric = "cosine",
                   check_finite: bool = True) -> "IVFIndex":
        """An index holding row i of ``x`` [n, d] in list ``lists[i]`` (int64 [n], values in
        [0, K)), under ``indices[i]`` (int64 [n], default 0..n-1); within a list rows keep their
        order. For lists computed elsewhere, e.g. chunk by chunk with :func:`clipadapt.assign`
        over a corpus read shard by shard."""
        index = cls(centroids, metric=metric, check_finite=check_finite)
        rows = index._checked_rows(x)
        if check_finite:
            _native.check_finite(rows, "x", _native.current_stream(rows))
        given = _native.as_input(lists, "lists", ndim=1, dtypes=("int64",))
        _native.require_same_device(rows, "x", given, "lists")
        if given.shape[0] != rows.shape[0]:
            raise ValueError(f"lists: has {given.shape[0]} entries for {rows.shape[0]} rows")
        if given.shape[0] and not 0 <= int(given.value.min()) <= int(given.value.max()) < index.n_lists:
            raise ValueError(f"lists: entries must lie in [0, {index.n_lists}) (one list per centroid)")
        index._append(rows, index._new_indices(rows, indices), as_library(given.value, index._centroids.library))
        return index

    def search(self, queries: Any, k: int, nprobe: int = 8, *, check_finite: bool = True) -> tuple[Any, Any]:
        """The exact top-k rows of each query within its ``nprobe`` nearest lists, best first
        (ties to the smaller index).

        Args:
            queries: [nq, d] in the dtype of the stored rows, on the centroids' device.
            k: 1 <= k <= ntotal. Slots that the probed lists cannot fill hold index -1.
            nprobe: lists probed per query, 1 <= nprobe <= K.
            check_finite: screen ``queries`` for NaN/Inf first.

        Returns:
            ``(scores float32 [nq, k], indices int64 [nq, k])`` in the library and on the
            device of ``queries``; indices as given to :meth:`add`.

        Raises:
            TypeError: ``queries`` of another dtype than the stored rows.
            ValueError: an empty index, k above the rows stored, nprobe above the lists,
                queries on another device, or NaN/Inf in them.

        Cost: nq K d multiply-adds to choose the lists, then the rows of the probed lists
        (about nq nprobe n / K rows when the lists are balanced) scored exactly.
        """
        k = _validate.integer(k, "k", minimum=1)
        nprobe = _validate.integer(nprobe, "nprobe", minimum=1)
        check_search(k, nprobe, rows=self.ntotal, lists=self.n_lists)
        q = _native.as_input(queries, "queries")
        _native.require_same_device(self._centroids, "index", q, "queries")
        if q.dtype != self._dtype:
            raise TypeError(f"queries: dtype {q.dtype} differs from the index rows ({self._dtype})")
        _, probes = knn(q.value, cast_like(self._centroids.value, q), nprobe, metric=self.metric,
                        check_finite=check_finite)
        return self._scan(q, probes, k)

    def inverted_lists(self) -> tuple[Any, Any, Any]:
        """The stored rows grouped by list: ``(vectors [ntotal, d], indices int64 [ntotal],
        offsets int64 [K + 1])``, list l's rows ``vectors[offsets[l]:offsets[l + 1]]`` in the
        order they were added; arrays in the library and on the device of the centroids."""
        if not self._segments:
            raise ValueError("index: is empty; add rows first")
        packed = self._packed()
        return packed.vectors, packed.indices, packed.offsets

    def _scan(self, q: _native.Array, probes: Any, k: int) -> tuple[Any, Any]:
        """The exact top-k of each query among the rows of its lists ``probes`` int64 [nq, nprobe]
        (entries -1 or out of range are skipped), in the queries' library and device."""
        packed = self._packed()
        scores = _native.empty(q, (q.shape[0], k), "float32")
        indices = _native.empty(q, (q.shape[0], k), "int64")
        stream = _native.current_stream(q)
        capsule = _native.capsule
        _core.ivf_search_into(capsule(q.value, stream), capsule(packed.vectors, stream),
                              capsule(packed.indices, stream), capsule(packed.row_norms, stream),
                              capsule(packed.offsets, stream),
                              capsule(probes, stream), k, self.metric, capsule(scores, stream),
                              capsule(indices, stream), stream)
        return scores, indices

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path`` (numpy ``.npz``; host copies of every array)."""
        if "bfloat16" in (self._centroids.dtype, self._dtype):
            raise TypeError("index: bfloat16 arrays cannot be saved (numpy has no bfloat16); build the index "
                            "from float16 or float32 rows")
        arrays = {"centroids": to_numpy(self._centroids.value), "metric": np.array(self.metric)}
        if self._segments:
            packed = self._packed()
            lists = np.repeat(np.arange(self.n_lists, dtype=np.int64), packed.list_sizes)
            arrays.update(zip(_SAVED_ROWS, (to_numpy(packed.vectors), to_numpy(packed.indices), lists)))
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> "IVFIndex":
        """Read an index written by :meth:`save`: numpy arrays for ``device="cpu"``, torch
        tensors on ``device`` for ``"cuda"`` or ``"cuda:N"``."""
        device = _validate.device(device, "device")
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (zipfile.BadZipFile, EOFError, ValueError) as error:
            raise ValueError(f"{path}: cannot be read as a saved IVFIndex ({error}); the file is damaged or "
                             "truncated: write it again") from error
        missing = {"centroids", "metric", *(_SAVED_ROWS if "vectors" in arrays else ())} - arrays.keys()
        if missing:
            raise ValueError(f"{path}: lacks the arrays {sorted(missing)} of a saved IVFIndex; write it again")
        if device != "cpu":
            import torch

            arrays = {name: torch.from_numpy(array).to(device) if array.ndim else array
                      for name, array in arrays.items()}
        index = cls(arrays["centroids"], metric=str(arrays["metric"]))
        if "vectors" in arrays:
            rows = index._checked_rows(arrays["vectors"])
            index._append(rows, index._new_indices(rows, arrays["ids"]), arrays["lists"])
        return index

    def _checked_rows(self, x: Any) -> _native.Array:
        """Rows to store: [n >= 1, d] beside the centroids, of their dimension and of the
        stored rows' dtype, viewed in the centroids' library."""
        rows = _native.as_input(x, "x")
        _native.require_same_device(self._centroids, "centroids", rows, "x")
        if rows.shape[0] == 0:
            raise ValueError("x: has no rows; give at least one row to add")
        if rows.shape[1] != self._centroids.shape[1]:
            raise ValueError(f"x: dimension {rows.shape[1]} differs from the centroids' {self._centroids.shape[1]}")
        if self._dtype is not None and rows.dtype != self._dtype:
            raise TypeError(f"x: dtype {rows.dtype} differs from the rows already added ({self._dtype})")
        return _native.as_input(as_library(rows.value, self._centroids.library), "x")

    def _from_host(self, array: np.ndarray) -> Any:
        """A host array copied to the centroids' library and device."""
        if self._centroids.library == "torch":
            import torch

            return torch.from_numpy(array).to(self._centroids.value.device)
        return _native.namespace(self._centroids.library).asarray(array)

    def _new_indices(self, rows: _native.Array, indices: Any) -> Any:
        """int64 [n] indices of the rows, in the centroids' library and device."""
        if indices is None:
            return self._from_host(np.arange(self.ntotal, self.ntotal + rows.shape[0], dtype=np.int64))
        given = _native.as_input(indices, "indices", ndim=1, dtypes=("int64",))
        if given.shape[0] != rows.shape[0]:
            raise ValueError(f"indices: has {given.shape[0]} entries for {rows.shape[0]} rows")
        if given.device != self._centroids.device:
            return self._from_host(to_numpy(given.value))
        return as_library(given.value, self._centroids.library)

    def _append(self, rows: _native.Array, indices: Any, lists: Any) -> None:
        """One more segment: the rows grouped by their ``lists`` int64 [n] (a stable counting sort)."""
        order, offsets = group_by_cluster(rows, lists, self.n_lists)
        vectors = rows.value[order]
        self._segments.append(_Segment(vectors, indices[order], offsets, _squared_norms(vectors)))
        self._dtype = rows.dtype

    def _packed(self) -> _Segment:
        """Every segment merged into one, grouped by list (kept as the only segment): one copy
        of each stored row, each segment's rows scattered to their places at once."""
        if len(self._segments) == 1:
            return self._segments[0]
        sizes = np.stack([segment.list_sizes for segment in self._segments])  # [segments, K]
        offsets = np.concatenate([[0], np.cumsum(sizes.sum(axis=0))])
        # Where each segment's part of list l starts: after the list's parts of earlier segments.
        starts = offsets[:-1] + np.cumsum(sizes, axis=0) - sizes
        total = int(offsets[-1])
        like = _native.as_input(self._segments[0].vectors, "vectors")
        vectors = _native.empty(like, (total, like.shape[1]), like.dtype)
        indices = _native.empty(like, (total,), "int64")
        row_norms = _native.empty(like, (total,), "float64")
        for segment, segment_sizes, segment_starts in zip(self._segments, sizes, starts):
            shift = segment_starts - to_numpy(segment.offsets)[:-1]  # packed row - segment row, per list
            rows = np.repeat(shift, segment_sizes) + np.arange(int(segment_sizes.sum()))
            destination = self._from_host(rows)
            vectors[destination] = segment.vectors
            indices[destination] = segment.indices
            row_norms[destination] = segment.row_norms
        packed = _Segment(vectors, indices, self._from_host(offsets), row_norms)
        self._segments = [packed]
        return packed
