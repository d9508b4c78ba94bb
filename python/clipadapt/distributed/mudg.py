"""The MUDG source index built by a group of ranks: :func:`build_index`, the stages of
:func:`clipadapt.mudg.index.build_index` run sharded.

Rank r of R reads the corpus rows ``[N r / R, N (r + 1) / R)`` (the corpus directory is read by
every rank: a shared file system, or a copy per node) and writes into one output directory
(shared by every rank):

1. ``pairing.npy``: each caption's nearest image by :func:`clipadapt.distributed.knn` (k = 1,
   inner product), image shards passed around the ring; each rank writes its slice of the
   one file, which is the single-process file.
2. ``centroids.npy``: :func:`clipadapt.distributed.paired_kmeans` of (the paired images,
   fetched from the ranks that hold them by :func:`clipadapt.distributed.take_rows`, the
   captions), or :func:`clipadapt.distributed.kmeans` of the images; written by rank 0.
3. the IVF lists: each rank assigns its images and saves its part
   (:meth:`clipadapt.distributed.ShardedIVFIndex.save`: one file per rank and the manifest
   ``ivf-shards.json``), which :meth:`clipadapt.mudg.index.MudgIndex.load` reads as one index.

``index.json`` is the single-process record (rank 0 writes it), so stages resume as they do
in one process, on any number of ranks, and a build started in one process can be finished
by a group or the other way round. Equal to the single-process index: the pairing bit for bit,
the centroids to float32 rounding (<= 1e-5; bitwise on one rank), hence the same lists.

Memory per rank: its N / R image and caption rows on the host and (with ``device="cuda:N"``)
on its GPU, plus one image shard in flight during the pairing, and its IVF part (its rows
again, grouped by list).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from clipadapt._arrays import to_numpy
from clipadapt._files import PARTIAL_SUFFIX, atomic_path
from clipadapt.clustering import assign
from clipadapt.distributed._comm import Communicator
from clipadapt.distributed.clustering import kmeans, paired_kmeans
from clipadapt.distributed.ivf import MANIFEST_FILE, SHARD_PATTERN, ShardedIVFIndex
from clipadapt.distributed.neighbors import knn
from clipadapt.distributed.rows import take_rows
from clipadapt.ivf import IVFIndex
from clipadapt.mudg.corpus import DTYPE, SourceCorpus
from clipadapt.mudg.index import (CENTROIDS_FILE, DEFAULT_MAX_ITER, DEFAULT_SEED, INDEX_FILE, METRIC, PAIRING_FILE,
                                  Clustering, IndexBuild, build_parameters, check_build, default_n_clusters,
                                  kmeans_settings, list_size_stats, on_device, read_info, write_json)

log = logging.getLogger(__name__)


def build_index(corpus: SourceCorpus | str | os.PathLike, out_dir: str | os.PathLike, *,
                n_clusters: int | None = None, max_iter: int = DEFAULT_MAX_ITER, clustering: Clustering = "paired",
                seed: int = DEFAULT_SEED, device: str = "cpu", resume: bool = True, group: Any = None,
                timeout: float | None = None) -> dict[str, Any]:
    """Build the MUDG source index of ``corpus`` in ``out_dir`` on every rank of ``group``
    together (see the module docstring); returns the ``index.json`` record on every rank.

    Args:
        corpus, out_dir, n_clusters, max_iter, clustering, seed, resume: as
            :func:`clipadapt.mudg.index.build_index`; the same on every rank.
        device: this rank's device: ``"cpu"`` (gloo) or ``"cuda:N"`` (NCCL for the pairing
            and k-means; the IVF part stays on the host, so the group also needs gloo:
            ``init_process_group(backend="cpu:gloo,cuda:nccl")``).
        group, timeout: as :func:`clipadapt.distributed.knn`.
    """
    comm = Communicator("mudg.build_index", group, torch.device(device), timeout)
    corpus, parameters, error = _checked(corpus, n_clusters, max_iter, clustering, seed, device)
    comm.handshake(error, {"rows": getattr(corpus, "count", None), "parameters": parameters,
                           "device": torch.device(device).type})
    build = _GroupBuild(comm, Path(out_dir), corpus, parameters, device, resume)
    if build.info["complete"]:
        return build.info
    rows = _rank_rows(corpus.count, comm)
    images = corpus.image_embeddings(rows)
    images_here = on_device(images, device)
    if clustering == "paired":
        captions_here = on_device(corpus.caption_embeddings(rows), device)
        pairing = build.pairing(rows, lambda: to_numpy(knn(captions_here, images_here, 1, metric=METRIC,
                                                           group=group, timeout=timeout)[1][:, 0]))
        centroids = build.centroids(lambda: paired_kmeans(
            take_rows(images_here, pairing, group=group, timeout=timeout), captions_here,
            **kmeans_settings(parameters), group=group, timeout=timeout))
    else:
        centroids = build.centroids(lambda: kmeans(images_here, **kmeans_settings(parameters), group=group,
                                                   timeout=timeout))
    index = build.add(lambda: _local_lists(centroids, images, rows, device), group, timeout)
    return build.finish(index, group, timeout)


def _checked(corpus: Any, n_clusters: Any, max_iter: Any, clustering: str, seed: Any,
             device: str) -> tuple[Any, dict[str, Any], Exception | None]:
    """The opened corpus, the parameters of the record and this rank's error, if any."""
    try:
        corpus = corpus if isinstance(corpus, SourceCorpus) else SourceCorpus(corpus)
        n_clusters = default_n_clusters(corpus.count) if n_clusters is None else n_clusters
        check_build(corpus, n_clusters, max_iter, clustering, device)
    except (OSError, TypeError, ValueError) as error:
        return corpus, {}, error
    return corpus, build_parameters(n_clusters, max_iter, clustering, seed), None


def _rank_rows(count: int, comm: Communicator) -> np.ndarray:
    """The global corpus rows of this rank: a contiguous, balanced run."""
    bounds = np.linspace(0, count, comm.world_size + 1).round().astype(np.int64)
    return np.arange(bounds[comm.rank], bounds[comm.rank + 1])


def _local_lists(centroids: np.ndarray, images: np.ndarray, rows: np.ndarray, device: str) -> IVFIndex:
    """This rank's images in the lists of their nearest centroids (float16 against float16, as
    the single-process build assigns), under their global row ids."""
    quantiser = centroids.astype(DTYPE)
    if device != "cpu":
        quantiser = torch.from_numpy(quantiser).to(device)  # host rows stream through it
    if not len(rows):
        return IVFIndex(centroids, metric=METRIC)
    lists = to_numpy(assign(images, quantiser, metric=METRIC)[1])
    return IVFIndex.from_lists(centroids, images, lists, rows, metric=METRIC)


class _GroupBuild:
    """``index.json`` during a group build: rank 0 keeps the record, every rank reads it."""

    def __init__(self, comm: Communicator, out: Path, corpus: SourceCorpus, parameters: dict[str, Any], device: str,
                 resume: bool):
        self.comm, self.out, self.device = comm, out, torch.device(device).type

        def open_record() -> dict[str, Any]:
            fresh = not resume or read_info(out) is None
            info = IndexBuild(out, corpus, parameters, self.device, resume).info
            if fresh:  # IndexBuild cleared the single-process files; the parts of a group build go too
                for part in [*out.glob(SHARD_PATTERN), out / MANIFEST_FILE]:
                    part.unlink(missing_ok=True)
            return info

        self.info = self._on_rank_zero(open_record)
        if comm.rank:
            self.info = read_info(out)

    def pairing(self, rows: np.ndarray, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """This rank's slice of ``pairing.npy``: read, or computed and written into the one file."""
        path = self.out / PAIRING_FILE
        if self._done("pairing", PAIRING_FILE):
            return np.array(np.load(path, mmap_mode="r")[rows])
        start = time.perf_counter()
        pairing = compute()
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        total = int(self.info["corpus"]["count"])
        self._on_rank_zero(lambda: np.lib.format.open_memmap(partial, mode="w+", dtype=np.int64, shape=(total,)))
        self.comm.guarded(lambda: _write_slice(partial, rows, pairing))  # also waits for every slice

        def publish() -> None:
            partial.replace(path)
            seconds = time.perf_counter() - start
            self._record("pairing", PAIRING_FILE, seconds,
                         {"gflops": 2.0 * total * total * self.info["corpus"]["dim"] / seconds / 1e9,
                          "distinct_images": _distinct(np.load(path, mmap_mode="r"))})

        self._on_rank_zero(publish)
        return pairing

    def centroids(self, compute: Callable[[], Any]) -> np.ndarray:
        """``centroids.npy``: read, or computed by every rank (collectively) and written by rank 0."""
        path = self.out / CENTROIDS_FILE
        if self._done("kmeans", CENTROIDS_FILE):
            return np.load(path)
        start = time.perf_counter()
        result = compute()
        centroids = to_numpy(result.centroids)

        def publish() -> None:
            with atomic_path(path) as partial, open(partial, "wb") as handle:
                np.save(handle, centroids)
            self._record("kmeans", CENTROIDS_FILE, time.perf_counter() - start,
                         {"inertia": result.inertia.tolist(), "splits": list(result.splits)})

        self._on_rank_zero(publish)
        return centroids

    def add(self, compute: Callable[[], IVFIndex], group: Any, timeout: float | None) -> ShardedIVFIndex | None:
        """The IVF parts and their manifest: kept (None), or computed and saved by every rank."""
        if self._done("add", MANIFEST_FILE):
            return None
        start = time.perf_counter()
        index = ShardedIVFIndex.from_local(self.comm.guarded(compute), group=group, timeout=timeout)
        index.save(self.out)
        self._on_rank_zero(lambda: self._record("add", MANIFEST_FILE, time.perf_counter() - start, {}))
        return index

    def finish(self, index: ShardedIVFIndex | None, group: Any, timeout: float | None) -> dict[str, Any]:
        """Records the list sizes and completes ``index.json``; the record, on every rank."""
        index = index or ShardedIVFIndex.load(self.out, group=group, timeout=timeout)
        sizes = index.list_sizes()

        def complete() -> None:
            self.info.update(ntotal=int(sizes.sum()), list_sizes=list_size_stats(sizes), complete=True)
            write_json(self.out / INDEX_FILE, self.info)
            log.info("index: %s complete (%d images in %d lists, largest %d, %d ranks)", self.out, sizes.sum(),
                     len(sizes), sizes.max(), self.comm.world_size)

        self._on_rank_zero(complete)
        return read_info(self.out)

    def _on_rank_zero(self, work: Callable[[], Any]) -> Any:
        """``work()`` on rank 0 alone, the other ranks waiting for it (its failure raised on
        every rank); what it returned, on rank 0."""
        return self.comm.guarded(lambda: work() if self.comm.rank == 0 else None)

    def _done(self, stage: str, file: str) -> bool:
        return stage in self.info["stages"] and (self.out / file).is_file()

    def _record(self, stage: str, file: str, seconds: float, statistics: dict[str, Any]) -> None:
        self.info["stages"][stage] = {"seconds": seconds, "device": self.device, "file": file,
                                      "ranks": self.comm.world_size, **statistics}
        write_json(self.out / INDEX_FILE, self.info)
        log.info("index: stage %s took %.3f s on %d ranks", stage, seconds, self.comm.world_size)


def _write_slice(path: Path, rows: np.ndarray, values: np.ndarray) -> None:
    """``values`` into the rows ``rows`` (contiguous) of the ``.npy`` file at ``path``."""
    if len(rows):
        target = np.load(path, mmap_mode="r+")
        target[rows[0]:rows[-1] + 1] = values
        target.flush()


def _distinct(ids: np.ndarray, chunk_rows: int = 1 << 24) -> int:
    """How many distinct values in [0, len(ids)) the int64 ``ids`` (e.g. a memory map) hold,
    read in chunks."""
    seen = np.zeros(len(ids), dtype=bool)
    for start in range(0, len(ids), chunk_rows):
        seen[ids[start:start + chunk_rows]] = True
    return int(seen.sum())


@contextmanager
def process_group_from_environment(device: str) -> Iterator[str]:
    """The default process group from torchrun's environment for the block, and this rank's
    device: ``"cpu"`` (gloo), or for ``"cuda"`` / ``"cuda:N"`` the rank's local GPU
    ``cuda:$LOCAL_RANK`` (gloo for host arrays, NCCL for CUDA tensors)."""
    if device == "cpu":
        rank_device, backend = "cpu", "gloo"
    else:
        rank_device, backend = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}", "cpu:gloo,cuda:nccl"
        torch.cuda.set_device(rank_device)
    dist.init_process_group(backend=backend)
    try:
        yield rank_device
    finally:
        dist.destroy_process_group()
