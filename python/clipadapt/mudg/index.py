"""The MUDG source index: an IVF index over a :class:`SourceCorpus`'s images whose
coarse centroids live in text space (paired k-means), searched with text queries.

Build (:func:`build_index`), each stage saved in the output directory and skipped on resume:

1. ``pairing.npy`` (paired clustering only): :func:`nearest_images`, for every caption its
   nearest image over the whole corpus (exact inner product; the caption's nearest image, not
   its own image, as ``brute_force_nearest_neighbor.py`` stores it).
2. ``centroids.npy``: ``clipadapt.paired_kmeans(images[pairing], captions, K)`` (rows assigned
   by their paired image, centroids the normalised means of the captions) or, as the
   baseline, ``clipadapt.kmeans(images, K)``; random initial rows, 10 iterations (faiss's
   GpuIndexIVF default), inner product, empty clusters split.
3. ``ivf.npz``: every corpus image, under its global row id, in the list of its nearest
   centroid (the training rule), assigned shard by shard.

``index.json`` records the corpus, the parameters, each finished stage (seconds, device, and
its statistics) and the list sizes; ``"complete": true`` once the index is saved.

Faithful to the official code except where noted: the initial centroids are K distinct random
rows drawn by numpy from ``seed`` (faiss draws them with its own ``rand_perm``), and nothing
is sub-sampled (faiss would above 256 rows per centroid, which the default K = N / 150 never
reaches).
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from clipadapt import _validate
from clipadapt._arrays import to_numpy
from clipadapt._files import PARTIAL_SUFFIX, atomic_path, read_json, write_text_atomically
from clipadapt.clustering import KMeansResult, assign, kmeans, paired_kmeans
from clipadapt.ivf import IVFIndex
from clipadapt.neighbors import knn
from clipadapt.mudg.corpus import DTYPE, SourceCorpus

log = logging.getLogger(__name__)

Clustering = Literal["paired", "standard"]
CLUSTERINGS = ("paired", "standard")
FORMAT, VERSION = "clipadapt-mudg-index", 1
INDEX_FILE, PAIRING_FILE, CENTROIDS_FILE, IVF_FILE = "index.json", "pairing.npy", "centroids.npy", "ivf.npz"
# The official index has 131072 lists for 20M pairs: about 150 rows per list.
ROWS_PER_LIST = 150
# faiss's ClusteringParameters.niter as GpuIndexIVF sets it; the official code keeps it.
DEFAULT_MAX_ITER = 10
# faiss's k-means seed 1234, plus 1 as Clustering.cpp draws the initial rows.
DEFAULT_SEED = 1234 + 1
# Captions compared with one image shard per pairing step (each image shard is read once).
DEFAULT_CAPTION_CHUNK_ROWS = 1 << 16
# Assignment by the IndexFlatL2 quantiser of the official code equals max inner product for
# unit centroids, and the inverted lists are searched by inner product.
METRIC = "ip"


def default_n_clusters(count: int) -> int:
    """K for a corpus of ``count`` pairs: one list per :data:`ROWS_PER_LIST` rows, at least 1."""
    return max(1, round(count / ROWS_PER_LIST))


def nearest_images(corpus_or_arrays: SourceCorpus | tuple[Any, Any], *,
                   caption_chunk_rows: int = DEFAULT_CAPTION_CHUNK_ROWS, device: str = "cpu",
                   progress: bool = True) -> np.ndarray:
    """The pairing of paired k-means: for each caption, the id of its nearest image.

    ``argmax_j <caption_i, image_j>`` over every image, exact, ties to the smaller image id.
    Each image shard is read (and, on ``"cuda"``, copied to the device) once and compared with
    every chunk of ``caption_chunk_rows`` captions through the fused top-1
    (``clipadapt.knn(k=1, metric="ip")``); a running best per caption, kept on the host, is
    replaced only by a strictly greater score. Shards are read memory-mapped, so the corpus may
    exceed RAM (and, on ``"cuda"``, GPU memory: one image shard and one caption chunk are there
    at a time).

    Args:
        corpus_or_arrays: a :class:`SourceCorpus`, or ``(images [n, D], captions [m, D])``
            host arrays of one float dtype.
        caption_chunk_rows: captions compared per step.
        device: ``"cpu"``, or ``"cuda"`` / ``"cuda:N"`` (blocks are copied to torch CUDA tensors there).

    Returns:
        int64 [m]: the nearest image's global id for each caption.
    """
    _validate.device(device, "device")
    _validate.integer(caption_chunk_rows, "caption_chunk_rows", minimum=1)
    image_blocks, caption_blocks = _blocks(corpus_or_arrays)
    chunks = [(start + offset, captions[offset:offset + caption_chunk_rows])
              for start, captions in caption_blocks for offset in range(0, len(captions), caption_chunk_rows)]
    n_captions = sum(len(captions) for _, captions in caption_blocks)
    pairing = np.zeros(n_captions, dtype=np.int64)
    best_scores = np.full(n_captions, -np.inf)  # float64 holds any input dtype's scores exactly
    with tqdm(total=len(chunks) * len(image_blocks), desc="pairing (caption -> nearest image)", unit="block",
              disable=not progress) as bar:
        # Image blocks in ascending id order: keeping the first of equal scores keeps the smaller id.
        for image_start, images in image_blocks:
            images = on_device(images, device)
            for caption_start, captions in chunks:
                scores, ids = knn(on_device(captions, device), images, 1, metric=METRIC)
                rows = np.arange(caption_start, caption_start + len(captions))
                scores = to_numpy(scores[:, 0])
                better = scores > best_scores[rows]
                best_scores[rows[better]] = scores[better]
                pairing[rows[better]] = to_numpy(ids[:, 0])[better] + image_start
                bar.update()
    return pairing


def _blocks(corpus_or_arrays: Any) -> tuple[list[tuple[int, Any]], list[tuple[int, Any]]]:
    """``(image blocks, caption blocks)``, each a list of (first global id, rows [r, D])."""
    if isinstance(corpus_or_arrays, SourceCorpus):
        shards = list(corpus_or_arrays.shards())
        return [(start, images) for start, images, _ in shards], [(start, captions) for start, _, captions in shards]
    try:
        images, captions = (to_numpy(array) for array in corpus_or_arrays)
    except (TypeError, ValueError) as error:
        raise TypeError("corpus_or_arrays: expected a SourceCorpus or a pair (images, captions) of arrays") from error
    for name, array in (("images", images), ("captions", captions)):
        if array.ndim != 2 or array.shape[0] == 0 or not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{name}: expected a non-empty float array [rows, D], got {array.dtype} "
                             f"{list(array.shape)}")
    if images.dtype != captions.dtype or images.shape[1] != captions.shape[1]:
        raise ValueError(f"images and captions: need one dtype and dimension, got {images.dtype} "
                         f"{list(images.shape)} and {captions.dtype} {list(captions.shape)}")
    return [(0, images)], [(0, captions)]


def on_device(rows: np.ndarray, device: str) -> Any:
    """Host rows as clipadapt takes them on ``device``: as they are on the CPU (a memory map is
    read in place), else a torch tensor there."""
    if device == "cpu":
        return rows
    import torch

    return torch.from_numpy(np.array(rows)).to(device)  # np.array: a writable host copy of a memory map


class MudgIndex:
    """A built source index: the :class:`clipadapt.IVFIndex` of the corpus images (float16
    rows, global row ids, text-space centroids) and its ``index.json`` record (``info``)."""

    def __init__(self, ivf: IVFIndex, info: dict[str, Any]):
        self.ivf = ivf
        self.info = info

    @property
    def ntotal(self) -> int:
        return self.ivf.ntotal

    @property
    def n_lists(self) -> int:
        return self.ivf.n_lists

    @property
    def dim(self) -> int:
        return int(self.ivf.centroids.shape[1])

    def matches_corpus(self, corpus: SourceCorpus) -> bool:
        """Whether ``corpus`` holds the content the index was built from (a moved or copied
        corpus does; see :meth:`SourceCorpus.fingerprint`). The index's ids are row numbers of
        that corpus: with another one they would name other images."""
        return self.info["corpus"].get("fingerprint") == corpus.fingerprint()

    def open_corpus(self) -> SourceCorpus:
        """The corpus the index was built from (for :meth:`SourceCorpus.records` of found ids)."""
        return SourceCorpus(self.info["corpus"]["path"])

    def search(self, queries: Any, k: int = 64, nprobe: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Top-k images of each text query [Q, D] (float32 or float16 host array; cast to the
        index's float16) within its ``nprobe`` nearest lists, by inner product.

        Returns:
            ``(scores float32 [Q, k], ids int64 [Q, k])``, best first, ids the corpus's global
            row ids (-1 where the probed lists hold fewer than k rows).
        """
        values = to_numpy(queries)
        if values.ndim != 2 or values.shape[1] != self.dim or not np.issubdtype(values.dtype, np.floating):
            raise ValueError(f"queries: expected a float array [Q, {self.dim}], got {values.dtype} "
                             f"{list(values.shape)}")
        return self.ivf.search(np.ascontiguousarray(values, dtype=DTYPE), k, nprobe=nprobe)

    def save(self, out_dir: str | os.PathLike) -> None:
        """Write ``ivf.npz`` and ``index.json`` (complete) to ``out_dir``, each atomically."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / IVF_FILE) as partial:
            self.ivf.save(partial)
        self.info["complete"] = True
        write_json(out / INDEX_FILE, self.info)

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> "MudgIndex":
        """Read an index saved by :meth:`save` / :func:`build_index`, or built by a group of
        ranks (:func:`clipadapt.distributed.mudg.build_index`), as one index (arrays on the host)."""
        out = Path(out_dir)
        info = read_info(out)
        if info is None or not info.get("complete"):
            raise FileNotFoundError(f"out_dir: {out} holds no finished MUDG index ({INDEX_FILE} missing or "
                                    "incomplete); run build_index (it resumes)")
        try:
            ivf = _load_ivf(out)
        except ValueError as error:
            raise ValueError(f"{error} (clipadapt mudg index --rebuild)") from error
        return cls(ivf, info)


def _load_ivf(out: Path) -> IVFIndex:
    """``ivf.npz``, or the parts a group of ranks saved (clipadapt.distributed.mudg) as one index."""
    if (out / IVF_FILE).is_file():
        return IVFIndex.load(out / IVF_FILE)
    from clipadapt.distributed.ivf import MANIFEST_FILE, load_as_one  # torch.distributed: only for such an index

    if (out / MANIFEST_FILE).is_file():
        return load_as_one(out)
    return IVFIndex.load(out / IVF_FILE)  # its error names the missing file


def build_index(corpus: SourceCorpus | str | os.PathLike, out_dir: str | os.PathLike, *,
                n_clusters: int | None = None, max_iter: int = DEFAULT_MAX_ITER, clustering: Clustering = "paired",
                seed: int = DEFAULT_SEED, device: str = "cpu", caption_chunk_rows: int = DEFAULT_CAPTION_CHUNK_ROWS,
                resume: bool = True, progress: bool = True) -> MudgIndex:
    """Build the source index of ``corpus`` in ``out_dir`` (see the module docstring).

    Args:
        corpus: a :class:`SourceCorpus` or its directory.
        out_dir: where the stages and the index are written.
        n_clusters: K inverted lists, 1 <= K <= N; default :func:`default_n_clusters` (N / 150).
        max_iter: at most this many k-means iterations (fewer when the centroids reach a fixed point).
        clustering: ``"paired"`` (centroids in caption space, the MUDG index) or ``"standard"``
            (spherical k-means on the images, the baseline).
        seed: seeds the initial centroids.
        device: ``"cpu"``, or ``"cuda"`` / ``"cuda:N"`` for the pairing, k-means and assignment
            (the index is kept on the host).
        caption_chunk_rows: see :func:`nearest_images`.
        resume: keep the stages a previous build with the same corpus and parameters finished;
            ``False`` rebuilds from scratch.
    """
    corpus = corpus if isinstance(corpus, SourceCorpus) else SourceCorpus(corpus)
    n_clusters = default_n_clusters(corpus.count) if n_clusters is None else n_clusters
    check_build(corpus, n_clusters, max_iter, clustering, device)
    parameters = build_parameters(n_clusters, max_iter, clustering, seed)
    build = IndexBuild(Path(out_dir), corpus, parameters, device, resume)
    if build.info["complete"]:
        log.info("index: %s is already built", build.out)
        return MudgIndex.load(build.out)
    pairing = None
    if clustering == "paired":
        pairing = build.stage("pairing", PAIRING_FILE,
                              lambda: _pairing_stage(corpus, caption_chunk_rows, device, progress))
    centroids = build.stage("kmeans", CENTROIDS_FILE, lambda: _kmeans_stage(corpus, pairing, parameters, device))
    ivf = build.stage("add", IVF_FILE, lambda: _add_stage(corpus, centroids, device, progress))
    sizes = ivf.list_sizes()
    build.info.update(ntotal=ivf.ntotal, list_sizes=list_size_stats(sizes))
    index = MudgIndex(ivf, build.info)
    index.save(build.out)
    log.info("index: %s complete (%d images in %d lists, largest %d)", build.out, ivf.ntotal, len(sizes), sizes.max())
    return index


def build_parameters(n_clusters: int, max_iter: int, clustering: str, seed: int) -> dict[str, Any]:
    """The parameters of a build as ``index.json`` records them (a build resumes only with the same)."""
    return {"n_clusters": int(n_clusters), "max_iter": int(max_iter), "clustering": clustering, "seed": int(seed),
            "metric": METRIC, "init": "random"}


def kmeans_settings(parameters: dict[str, Any]) -> dict[str, Any]:
    """The k-means arguments of a build with these recorded ``parameters``."""
    return {"n_clusters": parameters["n_clusters"], "max_iter": parameters["max_iter"], "metric": METRIC,
            "init": "random", "seed": parameters["seed"]}


def check_build(corpus: SourceCorpus, n_clusters: Any, max_iter: Any, clustering: str, device: str) -> None:
    """The single-process checks of a build's arguments (ValueError / TypeError naming the argument)."""
    _validate.device(device, "device")
    if clustering not in CLUSTERINGS:
        raise ValueError(f"clustering: unknown clustering {clustering!r}; use one of {', '.join(CLUSTERINGS)}")
    _validate.integer(n_clusters, "n_clusters", minimum=1)
    if n_clusters > corpus.count:
        raise ValueError(f"n_clusters: {n_clusters} exceeds the corpus's {corpus.count} rows; lower it")
    _validate.integer(max_iter, "max_iter", minimum=0)


def _pairing_stage(corpus: SourceCorpus, caption_chunk_rows: int, device: str,
                   progress: bool) -> tuple[np.ndarray, dict[str, Any]]:
    log.info("index: pairing %d captions with their nearest of %d images on %s", corpus.count, corpus.count, device)
    start = time.perf_counter()
    pairing = nearest_images(corpus, caption_chunk_rows=caption_chunk_rows, device=device, progress=progress)
    flops = 2.0 * corpus.count * corpus.count * corpus.dim
    return pairing, {"gflops": flops / (time.perf_counter() - start) / 1e9,
                     "distinct_images": int(np.unique(pairing).size)}


def _kmeans_stage(corpus: SourceCorpus, pairing: np.ndarray | None, parameters: dict[str, Any],
                  device: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Paired k-means (rows: each caption's paired image, and the caption) when ``pairing`` is
    given, else spherical k-means of the images; float32 centroids [K, D] and the run's record."""
    log.info("index: %s k-means, K=%d, at most %d iterations over %d rows on %s", parameters["clustering"],
             parameters["n_clusters"], parameters["max_iter"], corpus.count, device)
    settings = kmeans_settings(parameters)
    if pairing is None:
        result: KMeansResult = kmeans(on_device(corpus.image_embeddings(), device), **settings)
    else:
        result = paired_kmeans(on_device(corpus.image_embeddings(pairing), device),
                               on_device(corpus.caption_embeddings(), device), **settings)
    return to_numpy(result.centroids), {"inertia": result.inertia.tolist(), "splits": list(result.splits)}


def _add_stage(corpus: SourceCorpus, centroids: np.ndarray, device: str,
               progress: bool) -> tuple[IVFIndex, dict[str, Any]]:
    """Every image in the list of its nearest centroid, assigned shard by shard (float16 rows
    against float16 centroids, as k-means assigned), then grouped once."""
    quantiser = centroids.astype(DTYPE)
    if device != "cpu":
        import torch

        quantiser = torch.from_numpy(quantiser).to(device)  # host shards stream through it (clipadapt.assign)
    vectors = np.empty((corpus.count, corpus.dim), dtype=DTYPE)
    lists = np.empty(corpus.count, dtype=np.int64)
    for start, images, _ in tqdm(list(corpus.shards()), desc="assign images to lists", unit="shard",
                                 disable=not progress):
        rows = slice(start, start + len(images))
        vectors[rows] = images
        lists[rows] = to_numpy(assign(vectors[rows], quantiser, metric=METRIC)[1])
    return IVFIndex.from_lists(centroids, vectors, lists, metric=METRIC), {}


def list_size_stats(sizes: np.ndarray) -> dict[str, Any]:
    """Summary of the rows per list: min, median, mean, max, empty lists, and faiss's imbalance
    factor K * sum(size^2) / n^2 (1 for equal lists)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    total = float(sizes.sum())
    return {"min": int(sizes.min()), "median": float(np.median(sizes)), "mean": float(sizes.mean()),
            "max": int(sizes.max()), "empty": int((sizes == 0).sum()),
            "imbalance": len(sizes) * float(np.square(sizes.astype(np.float64)).sum()) / total**2}


class IndexBuild:
    """``out_dir``'s ``index.json`` during a build: which stages are done, and their records."""

    def __init__(self, out: Path, corpus: SourceCorpus, parameters: dict[str, Any], device: str, resume: bool):
        self.out, self.device = out, device
        corpus_info = {"path": os.fspath(corpus.path.resolve()), "count": corpus.count, "dim": corpus.dim,
                       "model": corpus.model, "fingerprint": corpus.fingerprint()}
        existing = read_info(out) if resume else None
        if existing is not None and (existing.get("corpus"), existing.get("parameters")) != (corpus_info, parameters):
            raise ValueError(f"out_dir: {out} holds an index of another corpus or other parameters "
                             f"({existing.get('parameters')}); pass resume=False (clipadapt mudg index --rebuild) to "
                             "rebuild it, or use another directory")
        if existing is None:
            _clear(out)
            existing = {"format": FORMAT, "version": VERSION, "complete": False, "corpus": corpus_info,
                        "parameters": parameters, "stages": {}}
            write_json(out / INDEX_FILE, existing)
        self.info = existing

    def stage(self, name: str, file: str, compute: Callable[[], tuple[Any, dict[str, Any]]]) -> Any:
        """The stage's output: read from ``file`` when a previous run recorded it done, else
        computed, saved atomically and recorded with its seconds, device and statistics."""
        path = self.out / file
        if name in self.info["stages"] and path.is_file():
            log.info("index: stage %s already done, read %s", name, path)
            return _load(path)
        start = time.perf_counter()
        value, statistics = compute()
        seconds = time.perf_counter() - start
        with atomic_path(path) as partial:
            _save(value, partial)
        self.info["stages"][name] = {"seconds": seconds, "device": self.device, "file": file, **statistics}
        write_json(self.out / INDEX_FILE, self.info)
        log.info("index: stage %s took %.3f s", name, seconds)
        return value


def _save(value: Any, path: Path) -> None:
    if isinstance(value, IVFIndex):
        value.save(path)
    else:
        with open(path, "wb") as handle:
            np.save(handle, value)


def _load(path: Path) -> Any:
    return IVFIndex.load(path) if path.name == IVF_FILE else np.load(path)


def _clear(out: Path) -> None:
    """Remove the files of an earlier build (only those this module writes)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (INDEX_FILE, PAIRING_FILE, CENTROIDS_FILE, IVF_FILE):
        for file in (out / name, out / (name + PARTIAL_SUFFIX)):
            file.unlink(missing_ok=True)


def read_info(out: Path) -> dict[str, Any] | None:
    """``out``'s ``index.json`` record, or None when there is none."""
    file = out / INDEX_FILE
    if not file.is_file():
        return None
    info = read_json(file, "the index record is damaged: rebuild the index (clipadapt mudg index --rebuild)")
    if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("version") != VERSION:
        raise ValueError(f"{file}: not a {FORMAT} version {VERSION} file")
    parameters = info.get("parameters")
    if isinstance(parameters, dict) and "n_iter" in parameters:
        # Written before k-means took max_iter: it ran exactly n_iter iterations, which max_iter
        # now bounds (stopping early only at a fixed point, with the same result), so it resumes.
        parameters["max_iter"] = parameters.pop("n_iter")
    return info


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    write_text_atomically(path, json.dumps(payload, indent=2) + "\n")
