"""IVF benchmark on paired data with a modality gap: how well text queries (captions) find their
nearest images through inverted lists built from three sets of centroids.

- ``paired``: ``clipadapt.paired_kmeans(images, captions)`` (rows assigned by image, centroids
  the normalised means of the captions) + ``clipadapt.IVFIndex``;
- ``kmeans``: ``clipadapt.kmeans(images)`` + ``clipadapt.IVFIndex``;
- ``faiss``: ``faiss.IndexIVFFlat`` (inner product), trained by faiss's own k-means on the images;
- ``faiss-kmeans``: ``faiss.IndexIVFFlat`` over the ``kmeans`` index's centroids: the same lists,
  so its search time and the ``kmeans`` one compare the two search implementations alone.

Every index holds all the images; the queries are captions of held-out items; the ground truth
is the exact top-k images of each query by inner product (``clipadapt.knn``).
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from clipadapt._arrays import to_numpy
from clipadapt.bench.common import (format_table, import_or_unavailable, log, MethodUnavailable, no_sync, on_device,
                                    publish_result, recall_at_k, require_clipadapt_on, Skipped, synchronizer,
                                    time_call)
from clipadapt.bench.data import synthetic_pairs
from clipadapt.clustering import kmeans, paired_kmeans
from clipadapt.device import set_num_threads
from clipadapt.ivf import IVFIndex
from clipadapt.neighbors import knn

INDEXES = ("paired", "kmeans", "faiss", "faiss-kmeans")
DEVICES = ("cpu", "cuda")
DEFAULT_N, DEFAULT_D, DEFAULT_CLUSTERS = 20_000, 512, 128  # about n / 150 rows per list
DEFAULT_ITERS, DEFAULT_QUERIES = 10, 1000
# synthetic_pairs' defaults (synthetic_clip's), not tuned for any index.
DEFAULT_CLASSES, DEFAULT_GAP, DEFAULT_NOISE = 100, 0.3, 0.6
DEFAULT_NPROBES = (1, 2, 4, 8, 16, 32)
# Neighbours searched per query: recall@1 scores the first, recall@10 all of them.
K = 10
# Rows whose norms are checked when the features come from files.
_NORM_CHECK_ROWS = 1000


@dataclass(frozen=True)
class Corpus:
    """What every index is built from and searched with (host float32 arrays).

    Attributes:
        images: [n, d] the database, paired row by row with ``captions``.
        captions: [n, d] used by paired k-means only.
        queries: [nq, d] text queries (items not in the database).
        images_path: the ``.npy`` file ``images`` were read from, which ``IVFIndex.add`` then
            reads itself; None for generated data.
        description: how the data were made, for the result.
    """

    images: np.ndarray
    captions: np.ndarray
    queries: np.ndarray
    images_path: Path | None
    description: dict[str, Any]


def synthetic_corpus(n: int, d: int, n_queries: int = DEFAULT_QUERIES, *, n_classes: int = DEFAULT_CLASSES,
                     gap: float = DEFAULT_GAP, noise: float = DEFAULT_NOISE, seed: int = 0) -> Corpus:
    """n paired items of :func:`synthetic_pairs` (split 0) as the database, and the captions of
    ``n_queries`` more items (split 1: same classes and gap, independent draws) as queries."""
    generate = partial(synthetic_pairs, d=d, n_classes=n_classes, gap=gap, noise=noise, seed=seed)
    database, held_out = generate(n, split=0), generate(n_queries, split=1)
    return Corpus(images=database.images, captions=database.captions, queries=held_out.captions, images_path=None,
                  description={"data": "synthetic_pairs(n, d, n_classes, gap, noise, seed, split=0); queries: "
                                       "captions of synthetic_pairs(n_queries, ..., split=1)",
                               "n_classes": n_classes, "gap": gap, "noise": noise, "n_queries": n_queries,
                               "data_seed": seed})


def corpus_from_files(images: str | os.PathLike, captions: str | os.PathLike,
                      queries: str | os.PathLike) -> Corpus:
    """Real features from float32 ``.npy`` files: paired images and captions [n, d], queries
    [nq, d]. Rows are used as they are (normalise them first for cosine)."""
    arrays = {name: np.load(path) for name, path in (("images", images), ("captions", captions),
                                                      ("queries", queries))}
    _check_features(arrays)
    return Corpus(**arrays, images_path=Path(images),
                  description={"data": "files", "images": os.fspath(images), "captions": os.fspath(captions),
                               "queries": os.fspath(queries), "n_queries": len(arrays["queries"])})


def _check_features(arrays: dict[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        if array.dtype != np.float32 or array.ndim != 2:
            raise ValueError(f"--{name}: expected a float32 [rows, d] array, got {array.dtype} {array.shape}; "
                             "save it with np.save(path, x.astype(np.float32))")
        norms = np.linalg.norm(array[:_NORM_CHECK_ROWS], axis=1)
        if not np.allclose(norms, 1.0, atol=1e-3):
            log(f"ivf: {name}: rows are not unit-norm, so inner product is not cosine")
    images, captions, queries = arrays["images"], arrays["captions"], arrays["queries"]
    if captions.shape != images.shape or queries.shape[1] != images.shape[1]:
        raise ValueError(f"images {images.shape} and captions {captions.shape} must be pairs, and queries "
                         f"{queries.shape} of the same dimension")


@dataclass(frozen=True)
class BuiltIndex:
    """An index ready to search, and what building it took.

    Attributes:
        train_seconds: computing the centroids (k-means).
        add_seconds: putting every image in its list.
        list_sizes: int64 [K] rows per list.
        search: nprobe -> ids [nq, K] of the queries' top K (any library and device).
        probe: nprobe -> ids [nq, nprobe] of the lists each query probes (any library and device).
    """

    train_seconds: float
    add_seconds: float
    list_sizes: np.ndarray
    search: Callable[[int], Any]
    probe: Callable[[int], Any]


@dataclass(frozen=True)
class IndexMethod:
    """One way to build the inverted lists.

    Attributes:
        name: column label, one of :data:`INDEXES`.
        description: what is built, for the legend.
        build: corpus -> :class:`BuiltIndex` (timed inside).
        synchronize: waits for the device work a search queued.
    """

    name: str
    description: str
    build: Callable[[Corpus], BuiltIndex]
    synchronize: Callable[[], None] = no_sync


@dataclass(frozen=True)
class _Setup:
    device: str
    threads: int
    clusters: int
    iters: int
    seed: int
    repeats: int = 1

    @property
    def synchronize(self) -> Callable[[], None]:
        return synchronizer(self.device)

    def adopt(self, array: np.ndarray) -> Any:
        return on_device(array, self.device)


def plan_indexes(*, clusters: int, iters: int = DEFAULT_ITERS, device: str = "cpu", threads: int = 2,
                 seed: int = 0, repeats: int = 1) -> list[IndexMethod | Skipped]:
    """Every index of :data:`INDEXES` that can be built on ``device``, and the ones that cannot
    as :class:`Skipped`. Sets each library's thread count to ``threads``; each search is timed
    ``repeats`` times (the fastest counts)."""
    setup = _Setup(device=device, threads=threads, clusters=clusters, iters=iters, seed=seed, repeats=repeats)
    planned: list[IndexMethod | Skipped] = []
    for name, factory in _INDEX_FACTORIES.items():
        try:
            planned.append(factory(setup))
        except MethodUnavailable as why:
            planned.append(Skipped(name, str(why), device))
    return planned


def _clipadapt_index(setup: _Setup, *, paired: bool) -> IndexMethod:
    require_clipadapt_on(setup.device)
    set_num_threads(setup.threads)
    description = ("clipadapt.paired_kmeans(images, captions) centroids (caption space)" if paired
                   else "clipadapt.kmeans(images) centroids")
    return IndexMethod("paired" if paired else "kmeans", f"{description} + clipadapt.IVFIndex",
                       partial(_build_clipadapt, setup=setup, paired=paired), setup.synchronize)


def _clipadapt_centroids(corpus: Corpus, setup: _Setup, *, paired: bool) -> tuple[float, Any]:
    """Seconds and centroids of k-means (paired or not, init="random", metric "ip") on the images."""
    images = setup.adopt(corpus.images)
    clustering = partial(paired_kmeans, images, setup.adopt(corpus.captions)) if paired else partial(kmeans, images)
    (train_seconds,), result = time_call(partial(clustering, setup.clusters, max_iter=setup.iters, metric="ip",
                                                 init="random", seed=setup.seed), synchronize=setup.synchronize)
    return train_seconds, result.centroids


def _build_clipadapt(corpus: Corpus, *, setup: _Setup, paired: bool) -> BuiltIndex:
    """k-means (paired or not), then every image added to an ``IVFIndex`` over its centroids,
    from the file when the images came from one."""
    images = setup.adopt(corpus.images)
    train_seconds, centroids = _clipadapt_centroids(corpus, setup, paired=paired)
    index = IVFIndex(centroids, metric="ip")
    database = images if corpus.images_path is None else corpus.images_path
    (add_seconds,), _ = time_call(partial(index.add, database), synchronize=setup.synchronize)
    queries = setup.adopt(corpus.queries)
    return BuiltIndex(train_seconds, add_seconds, index.list_sizes(),
                      search=lambda nprobe: index.search(queries, K, nprobe=nprobe, check_finite=False)[1],
                      probe=lambda nprobe: knn(queries, index.centroids, nprobe, metric="ip")[1])


def _faiss_index(setup: _Setup, *, own_centroids: bool) -> IndexMethod:
    faiss = import_or_unavailable("faiss", "pip install faiss-cpu")
    if setup.device == "cuda" and not hasattr(faiss, "StandardGpuResources"):
        raise MethodUnavailable("this faiss build has no GPU support (faiss-cpu)")
    if not own_centroids:
        require_clipadapt_on(setup.device)
    faiss.omp_set_num_threads(setup.threads)
    gpu_resources = faiss.StandardGpuResources() if setup.device == "cuda" else None
    description = ("faiss IndexIVFFlat (inner product), trained by faiss k-means (spherical) on images" if own_centroids
                   else "faiss IndexIVFFlat (inner product) over the kmeans index's centroids: the same lists")
    return IndexMethod("faiss" if own_centroids else "faiss-kmeans", description,
                       partial(_build_faiss, setup=setup, gpu_resources=gpu_resources, own_centroids=own_centroids))


def _build_faiss(corpus: Corpus, *, setup: _Setup, gpu_resources: Any = None, own_centroids: bool = True) -> BuiltIndex:
    """``IndexIVFFlat`` over an ``IndexFlatIP`` quantizer: faiss's k-means with the benchmark's
    iterations and seed on every image (no sub-sampling), or the centroids of the ``kmeans``
    index; then every image added."""
    import faiss

    n, d = corpus.images.shape
    quantizer = faiss.IndexFlatIP(d)
    if own_centroids:
        train_seconds = None
    else:
        train_seconds, centroids = _clipadapt_centroids(corpus, setup, paired=False)
        quantizer.add(np.ascontiguousarray(to_numpy(centroids), dtype=np.float32))
    index = faiss.IndexIVFFlat(quantizer, d, setup.clusters, faiss.METRIC_INNER_PRODUCT)
    if gpu_resources is not None:
        index = faiss.index_cpu_to_gpu(gpu_resources, 0, index)
    if own_centroids:
        index.cp.niter, index.cp.seed = setup.iters, setup.seed
        index.cp.max_points_per_centroid = math.ceil(n / setup.clusters) + 1
        index.cp.min_points_per_centroid = 1  # faiss only warns below it
        (train_seconds,), _ = time_call(partial(index.train, corpus.images), synchronize=no_sync)
    (add_seconds,), _ = time_call(partial(index.add, corpus.images), synchronize=no_sync)
    return BuiltIndex(train_seconds, add_seconds, _faiss_list_sizes(index),
                      search=partial(_faiss_search, index, corpus.queries),
                      probe=lambda nprobe: index.quantizer.search(corpus.queries, nprobe)[1])


def _faiss_list_sizes(index: Any) -> np.ndarray:
    import faiss

    host = index if isinstance(index, faiss.IndexIVF) else faiss.index_gpu_to_cpu(index)
    return np.array([host.invlists.list_size(i) for i in range(host.nlist)], dtype=np.int64)


def _faiss_search(index: Any, queries: np.ndarray, nprobe: int) -> np.ndarray:
    index.nprobe = nprobe
    return index.search(queries, K)[1]


_INDEX_FACTORIES: dict[str, Callable[[_Setup], IndexMethod]] = {
    "paired": partial(_clipadapt_index, paired=True), "kmeans": partial(_clipadapt_index, paired=False),
    "faiss": partial(_faiss_index, own_centroids=True), "faiss-kmeans": partial(_faiss_index, own_centroids=False)}


def exact_top_k(corpus: Corpus, device: str = "cpu") -> tuple[np.ndarray, float]:
    """The ground truth: ids int64 [nq, K] of each query's K best images by inner product
    (``clipadapt.knn``, exact), and the seconds it took."""
    queries, images = on_device(corpus.queries, device), on_device(corpus.images, device)
    (seconds,), (_, ids) = time_call(partial(knn, queries, images, K, metric="ip"), synchronize=synchronizer(device))
    return to_numpy(ids), seconds


def run_ivf_benchmark(corpus: Corpus, clusters: int, *, iters: int = DEFAULT_ITERS,
                      nprobes: Sequence[int] = DEFAULT_NPROBES, threads: int = 2, seed: int = 0,
                      device: str = "cpu", repeats: int = 1, json_path: str | Path | None = None) -> dict[str, Any]:
    """Build every index of :data:`INDEXES` on ``corpus`` with ``clusters`` lists, search the
    queries at each nprobe, score recall@1 and recall@10 against exact search, print a table and
    return (and write) the results.

    Args:
        corpus: :func:`synthetic_corpus` or :func:`corpus_from_files`.
        clusters: K, inverted lists per index (1 <= K <= images).
        iters: k-means iterations of every index (faiss's included), >= 1.
        nprobes: lists probed per query; values above K are left out.
        threads: CPU threads of every library (set process-wide).
        seed: seeds every k-means initialisation.
        device: ``"cpu"`` or ``"cuda"`` (faiss on CUDA needs a faiss GPU build).
        repeats: timed runs of each search; the fastest is reported.
        json_path: where to write the result as JSON, if anywhere.

    Returns:
        ``{"benchmark", "date", "command", "parameters", "machine", "ground_truth", "rows"}``;
        each row is one index: ``method, description, status`` (``ok``, ``skipped`` or
        ``failed``) and ``reason``, or ``train_seconds, add_seconds, list_imbalance, empty_lists,
        largest_list`` and ``by_nprobe``: ``[{nprobe, recall_at_1, recall_at_10, search_seconds,
        rows_scanned}]`` (``rows_scanned``: mean rows in a query's probed lists).
    """
    n, d = corpus.images.shape
    probed = [nprobe for nprobe in nprobes if nprobe <= clusters]
    _check_parameters(n, clusters, iters, probed, device, repeats)
    parameters = {"n": n, "d": d, "clusters": clusters, "iters": iters, "k": K, "nprobes": probed,
                  "threads": threads, "seed": seed, "device": device, "metric": "ip", "init": "random",
                  "repeats": repeats, **corpus.description}
    planned = plan_indexes(clusters=clusters, iters=iters, device=device, threads=threads, seed=seed, repeats=repeats)
    log(f"ivf: exact top-{K} of {len(corpus.queries)} queries among {n} images (clipadapt.knn)")
    truth, exact_seconds = exact_top_k(corpus, device)
    rows = [_measure(entry, corpus, probed, truth, repeats) for entry in planned]
    _add_same_list_ratios(rows)
    ground_truth = {"method": f"clipadapt.knn(queries, images, {K}, metric='ip')", "device": device,
                    "seconds": exact_seconds}
    return publish_result("ivf", parameters, threads, {"rows": rows, "ground_truth": ground_truth}, format_ivf_table,
                          json_path)


def _check_parameters(n: int, clusters: int, iters: int, nprobes: Sequence[int], device: str, repeats: int) -> None:
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    if device not in DEVICES:
        raise ValueError(f"device: unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if not 1 <= clusters <= n or n < K:
        raise ValueError(f"need 1 <= clusters <= n and n >= {K}, got clusters={clusters}, n={n}")
    if iters < 1:
        raise ValueError(f"iters: must be >= 1, got {iters}")
    if not nprobes or min(nprobes) < 1:
        raise ValueError(f"nprobe: need values in [1, clusters={clusters}], got {list(nprobes)}")


def _measure(entry: IndexMethod | Skipped, corpus: Corpus, nprobes: Sequence[int], truth: np.ndarray,
             repeats: int) -> dict[str, Any]:
    """One index's row: built, searched at every nprobe and scored, or why not."""
    if isinstance(entry, Skipped):
        log(f"ivf: {entry.name} skipped: {entry.reason}")
        return {"method": entry.name, "status": "skipped", "reason": entry.reason}
    row = {"method": entry.name, "description": entry.description}
    log(f"ivf: {entry.name}: building ({entry.description})")
    try:
        built = entry.build(corpus)
        by_nprobe = [_search(built, nprobe, truth, entry.synchronize, repeats) for nprobe in nprobes]
    except (RuntimeError, MemoryError) as error:
        log(f"ivf: {entry.name} failed: {error}")
        return {**row, "status": "failed", "reason": f"{type(error).__name__}: {error}"}
    sizes = built.list_sizes
    log(f"ivf: {entry.name}: train {built.train_seconds:.3f} s, add {built.add_seconds:.3f} s")
    return {**row, "status": "ok", "train_seconds": built.train_seconds, "add_seconds": built.add_seconds,
            "list_imbalance": list_imbalance(sizes), "empty_lists": int((sizes == 0).sum()),
            "largest_list": int(sizes.max()), "by_nprobe": by_nprobe}


def _search(built: BuiltIndex, nprobe: int, truth: np.ndarray, synchronize: Callable[[], None],
            repeats: int) -> dict[str, Any]:
    """Recall@1 and recall@K of the search of every query at ``nprobe`` (its seconds: the
    fastest of ``repeats``), and the mean rows in the lists a query probes (what the search
    reads, whatever the implementation)."""
    times, ids = time_call(partial(built.search, nprobe), synchronize=synchronize, repeats=repeats)
    seconds = min(times)
    found = to_numpy(ids)
    rows_scanned = built.list_sizes[to_numpy(built.probe(nprobe))].sum(axis=1).mean()
    return {"nprobe": nprobe, "recall_at_1": recall_at_k(found[:, :1], truth[:, :1]),
            "recall_at_10": recall_at_k(found, truth), "search_seconds": seconds, "rows_scanned": float(rows_scanned)}


def _add_same_list_ratios(rows: list[dict[str, Any]]) -> None:
    """On the ``kmeans`` row, per nprobe: its search time over faiss's on the same lists
    (``faiss-kmeans``), when both were searched."""
    by_method = {row["method"]: row for row in rows if row["status"] == "ok"}
    if "kmeans" not in by_method or "faiss-kmeans" not in by_method:
        return
    for ours, theirs in zip(by_method["kmeans"]["by_nprobe"], by_method["faiss-kmeans"]["by_nprobe"]):
        ours["search_ratio_same_lists"] = ours["search_seconds"] / theirs["search_seconds"]


def list_imbalance(sizes: np.ndarray) -> float:
    """faiss's imbalance factor K * sum(size^2) / n^2: 1 for equal lists, larger when a query's
    probed lists hold more rows than average."""
    total = float(sizes.sum())
    return len(sizes) * float(np.square(sizes.astype(np.float64)).sum()) / total**2


def format_ivf_table(result: dict[str, Any]) -> str:
    """The recall table (one row per nprobe, two columns per index) and the build table of a
    :func:`run_ivf_benchmark` result, with a legend."""
    p, rows = result["parameters"], result["rows"]
    data = (f"images {p['images']}, captions {p['captions']}, queries {p['queries']}" if p["data"] == "files"
            else f"{p['n_classes']} classes, gap={p['gap']}, noise={p['noise']}, data seed {p['data_seed']}")
    title = (f"IVF, text queries -> images: n={p['n']} d={p['d']} K={p['clusters']} lists, {p['iters']} k-means "
             f"iterations (seed {p['seed']}), {p['n_queries']} queries, top-{p['k']}, on {p['device']}, {p['threads']} "
             f"threads; {data}")
    recall_table = per_nprobe_table(rows, p["nprobes"], {"R@1": ("recall_at_1", ".4f"),
                                                          f"R@{p['k']}": ("recall_at_10", ".4f")})
    cost_table = per_nprobe_table(rows, p["nprobes"], {"rows read": ("rows_scanned", ".0f"),
                                                        "search s": ("search_seconds", ".3f")})
    speed_table = _same_list_table(rows, p["nprobes"])
    build_headers = ["index", "train s", "add s", "imbalance", "empty lists", "largest list", "what"]
    legend = [f"R@1 = fraction of queries whose first result is their exact nearest image; R@{p['k']} = mean "
              f"|found top-{p['k']} ∩ exact top-{p['k']}| / {p['k']}; exact = {result['ground_truth']['method']}",
              "rows read = mean rows in the lists a query probes (the work, whatever the implementation); "
              f"search s = seconds to search all {p['n_queries']} queries",
              "imbalance = K * sum(list size^2) / n^2 (1 = equal lists)"]
    return "\n".join([title, recall_table, "", cost_table, "", *speed_table,
                      format_table(build_headers, [_build_row(row) for row in rows], align="lrrrrrl"), *legend])


def _same_list_table(rows: Sequence[dict[str, Any]], nprobes: Sequence[int]) -> list[str]:
    """Lines of the same-lists speed table (empty without both rows): clipadapt's and faiss's
    search seconds on the kmeans index's lists and their ratio."""
    ours = next((row for row in rows if row["method"] == "kmeans" and row["status"] == "ok"), None)
    if ours is None or "search_ratio_same_lists" not in ours["by_nprobe"][0]:
        return []
    theirs = next(row for row in rows if row["method"] == "faiss-kmeans")
    lines = [[str(nprobe), f"{mine['search_seconds']:.4f}", f"{other['search_seconds']:.4f}",
              f"{mine['search_ratio_same_lists']:.2f}"]
             for nprobe, mine, other in zip(nprobes, ours["by_nprobe"], theirs["by_nprobe"])]
    table = format_table(["nprobe", "clipadapt s", "faiss s", "clipadapt / faiss"], lines, align="rrrr")
    return ["search on the same lists (the kmeans index's; probes included):", table, ""]


def per_nprobe_table(rows: Sequence[dict[str, Any]], nprobes: Sequence[int],
                     columns: dict[str, tuple[str, str]]) -> str:
    """One line per nprobe; per index, one column per entry of ``columns`` (header -> the
    ``by_nprobe`` field and its format); ``-`` for an index that was not built."""
    headers = ["nprobe", *(f"{row['method']} {header}" for row in rows for header in columns)]
    lines = [[str(nprobe), *(_cell(row, position, field, spec) for row in rows for field, spec in columns.values())]
             for position, nprobe in enumerate(nprobes)]
    return format_table(headers, lines, align="r" * len(headers))


def _cell(row: dict[str, Any], position: int, field: str, spec: str) -> str:
    return format(row["by_nprobe"][position][field], spec) if row["status"] == "ok" else "-"


def _build_row(row: dict[str, Any]) -> list[str]:
    if row["status"] != "ok":
        return [row["method"], *["-"] * 5, f"{row['status']} ({row['reason']})"]
    return [row["method"], f"{row['train_seconds']:.3f}", f"{row['add_seconds']:.3f}", f"{row['list_imbalance']:.2f}",
            str(row["empty_lists"]), str(row["largest_list"]), row["description"]]
