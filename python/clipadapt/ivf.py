"""An inverted-file (IVF) index over fixed centroids, exact within the probed lists."""
from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from clipadapt import _native, _validate
from clipadapt._native import _core
from clipadapt.kmeans import _cast_like, _group, assign
from clipadapt.knn import Metric, _METRICS, _to_numpy, knn

# Rows assigned per step when adding from a file, so a memory-mapped corpus is streamed.
_ADD_CHUNK_ROWS = 1 << 18


class IVFIndex:
    """Inverted lists over ``centroids`` [K, d] (e.g. from :func:`clipadapt.paired_kmeans`).

    ``add`` puts every database row in the list of its nearest centroid (the training rule);
    ``search`` probes each query's ``nprobe`` nearest centroids and returns the exact top-k
    among the rows of those lists. Storage lives in the library and on the device of the
    centroids; with ``nprobe = K`` the result equals exact search.
    """

    def __init__(self, centroids: Any, metric: Metric = "cosine"):
        if metric not in _METRICS:
            raise ValueError(f"metric: unknown metric {metric!r}; use one of {', '.join(_METRICS)}")
        self._centroids = _native.as_input(centroids, "centroids")
        if 0 in self._centroids.shape:
            raise ValueError(f"centroids: empty array of shape {self._centroids.shape}; need at least one centroid "
                             "and one column")
        # A NaN centroid would attract no row, or every row, without an error.
        _native.check_finite(self._centroids, "centroids", _native.current_stream(self._centroids), skippable=False)
        self.metric = metric
        self._vectors: _native.Array | None = None
        self._ids: Any = None
        self._lists: Any = None
        self._offsets: Any = None

    @property
    def centroids(self) -> Any:
        return self._centroids.value

    @property
    def n_lists(self) -> int:
        return self._centroids.shape[0]

    @property
    def ntotal(self) -> int:
        return 0 if self._vectors is None else self._vectors.shape[0]

    def list_sizes(self) -> np.ndarray:
        """Rows per inverted list, int64 [K] (host)."""
        if self._offsets is None:
            return np.zeros(self.n_lists, dtype=np.int64)
        return np.diff(_to_numpy(self._offsets))

    def add(self, x: Any, ids: Any = None) -> "IVFIndex":
        """Add rows [n, d] (an array, or the path of a ``.npy`` file, read memory-mapped in chunks).

        ``ids`` int64 [n] defaults to consecutive numbers after the rows already added.
        """
        if isinstance(x, (str, os.PathLike)):
            mapped = np.load(os.fspath(x), mmap_mode="r")
            for start in range(0, mapped.shape[0], _ADD_CHUNK_ROWS):
                chunk_ids = None if ids is None else ids[start:start + _ADD_CHUNK_ROWS]
                self.add(self._like_centroids(np.ascontiguousarray(mapped[start:start + _ADD_CHUNK_ROWS])), chunk_ids)
            return self
        rows = self._checked_rows(x)
        if self._vectors is not None and rows.dtype != self._vectors.dtype:
            raise TypeError(f"x: dtype {rows.dtype} differs from the rows already added ({self._vectors.dtype})")
        new_ids = self._new_ids(rows, ids)
        _, lists = assign(rows.value, _cast_like(self._centroids.value, rows), metric=self.metric)
        self._store(rows, new_ids, lists)
        return self

    @classmethod
    def from_lists(cls, centroids: Any, x: Any, lists: Any, ids: Any = None, *,
                   metric: Metric = "cosine") -> "IVFIndex":
        """An index holding row i of ``x`` [n, d] in list ``lists[i]`` (int64 [n], values in
        [0, K)), with id ``ids[i]`` (int64 [n], default 0..n-1); within a list rows keep their
        order. For lists computed chunk by chunk with :func:`clipadapt.assign` (a corpus read
        shard by shard): one grouping pass, where ``add`` per chunk regroups every row so far."""
        index = cls(centroids, metric=metric)
        rows = index._checked_rows(x)
        given = _native.as_input(lists, "lists", ndim=1, dtypes=("int64",))
        _native.require_same_device(rows, "x", given, "lists")
        if given.shape[0] != rows.shape[0]:
            raise ValueError(f"lists: has {given.shape[0]} entries for {rows.shape[0]} rows")
        if given.shape[0] and not 0 <= int(given.value.min()) <= int(given.value.max()) < index.n_lists:
            raise ValueError(f"lists: entries must lie in [0, {index.n_lists}) (one list per centroid)")
        index._store(rows, index._new_ids(rows, ids), given.value)
        return index

    def search(self, queries: Any, k: int, nprobe: int = 8) -> tuple[Any, Any]:
        """Top-k ``(scores float32 [nq, k], ids int64 [nq, k])`` of each query within its
        ``nprobe`` nearest lists, best first (ties to the smaller id). Slots that the probed
        lists cannot fill hold id -1."""
        k = _validate.integer(k, "k", minimum=1)
        nprobe = _validate.integer(nprobe, "nprobe", minimum=1)
        if self.ntotal == 0:
            raise ValueError("index: is empty; add rows before searching")
        if k > self.ntotal:
            raise ValueError(f"k: {k} exceeds the {self.ntotal} rows in the index; lower k")
        if nprobe > self.n_lists:
            raise ValueError(f"nprobe: {nprobe} exceeds the {self.n_lists} lists; lower nprobe")
        q = _native.as_input(queries, "queries")
        _native.require_same_device(self._centroids, "index", q, "queries")
        if q.dtype != self._vectors.dtype:
            raise TypeError(f"queries: dtype {q.dtype} differs from the index rows ({self._vectors.dtype})")
        _, probes = knn(q.value, _cast_like(self._centroids.value, q), nprobe, metric=self.metric)
        return self._scan(q, probes, k)

    def _scan(self, q: _native.Array, probes: Any, k: int) -> tuple[Any, Any]:
        """The exact top-k of each query among the rows of its lists ``probes`` int64 [nq, nprobe]
        (entries -1 or out of range are skipped), in the queries' library and device."""
        scores = _native.empty(q, (q.shape[0], k), "float32")
        indices = _native.empty(q, (q.shape[0], k), "int64")
        stream = _native.current_stream(q)
        capsule = _native.capsule
        _core.ivf_search_into(capsule(q.value, stream), capsule(self._vectors.value, stream),
                              capsule(self._ids, stream), capsule(self._offsets, stream), capsule(probes, stream), k,
                              self.metric, capsule(scores, stream), capsule(indices, stream), stream)
        return scores, indices

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path`` (numpy ``.npz``; host copies of every array)."""
        if "bfloat16" in (self._centroids.dtype, self._vectors.dtype if self._vectors else None):
            raise TypeError("index: bfloat16 arrays cannot be saved (numpy has no bfloat16); build the index "
                            "from float16 or float32 rows")
        arrays = {"centroids": _to_numpy(self._centroids.value), "metric": np.array(self.metric)}
        if self._vectors is not None:
            arrays.update(vectors=_to_numpy(self._vectors.value), ids=_to_numpy(self._ids),
                          lists=_to_numpy(self._lists))
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "IVFIndex":
        """Read an index written by :meth:`save` (numpy arrays on the host)."""
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (zipfile.BadZipFile, EOFError, ValueError) as error:
            raise ValueError(f"{path}: cannot be read as a saved IVFIndex ({error}); the file is damaged or "
                             "truncated: write it again") from error
        missing = {"centroids", "metric", *(("ids", "lists") if "vectors" in arrays else ())} - arrays.keys()
        if missing:
            raise ValueError(f"{path}: lacks the arrays {sorted(missing)} of a saved IVFIndex; write it again")
        index = cls(arrays["centroids"], metric=str(arrays["metric"]))
        if "vectors" in arrays:
            index._store(_native.as_input(arrays["vectors"], "vectors"), arrays["ids"], arrays["lists"])
        return index

    def _checked_rows(self, x: Any) -> _native.Array:
        """Rows to store: [n >= 1, d] beside the centroids, of their dimension."""
        rows = _native.as_input(x, "x")
        _native.require_same_device(self._centroids, "centroids", rows, "x")
        if rows.shape[0] == 0:
            raise ValueError("x: has no rows; give at least one row to add")
        if rows.shape[1] != self._centroids.shape[1]:
            raise ValueError(f"x: dimension {rows.shape[1]} differs from the centroids' {self._centroids.shape[1]}")
        return rows

    def _like_centroids(self, rows: np.ndarray) -> Any:
        """Host rows moved to the centroids' library and device."""
        if self._centroids.library == "torch":
            import torch

            return torch.from_numpy(rows).to(self._centroids.value.device)
        return _native.namespace(self._centroids.library).asarray(rows)

    def _new_ids(self, rows: _native.Array, ids: Any) -> Any:
        if ids is None:
            return self._like_centroids(np.arange(self.ntotal, self.ntotal + rows.shape[0], dtype=np.int64))
        given = _native.as_input(ids, "ids", ndim=1, dtypes=("int64",))
        if given.shape[0] != rows.shape[0]:
            raise ValueError(f"ids: has {given.shape[0]} entries for {rows.shape[0]} rows")
        return given.value

    def _store(self, rows: _native.Array, ids: Any, lists: Any) -> None:
        """Append rows and regroup all of them by list (a stable sort, so ids keep their order)."""
        xp = _native.namespace(rows.library)
        if self._vectors is not None:
            join = xp.cat if rows.library == "torch" else xp.concatenate
            rows = _native.as_input(join([self._vectors.value, rows.value]), "x")
            ids, lists = join([self._ids, ids]), join([self._lists, lists])
        order, offsets = _group(rows, lists, self.n_lists)
        self._vectors = _native.as_input(rows.value[order], "x")
        self._ids, self._lists, self._offsets = ids[order], lists[order], offsets
