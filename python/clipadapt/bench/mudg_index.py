"""MUDG source index benchmark: the whole :func:`clipadapt.mudg.index.build_index` (pairing,
k-means, adding every image) on a synthetic corpus, paired vs standard k-means, and how well
text queries find their exact nearest images through it.

The corpus is :func:`clipadapt.bench.ivf.synthetic_corpus`'s paired items (CLIP-like, with a
modality gap), written with :func:`clipadapt.mudg.corpus.write_corpus` (float16, 4 shards, so
pairing and assignment stream shard by shard as on a real corpus); the queries are captions of
held-out items; the ground truth is their exact top-64 images by inner product over the same
float16 rows (``clipadapt.knn``).
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from clipadapt._arrays import to_numpy
from clipadapt.bench.common import (describe_reference_mm, format_table, log, measure_reference_mm, on_device,
                                    optional_number, publish_result, recall_at_k, require_clipadapt_on, synchronizer,
                                    time_call)
from clipadapt.bench.ivf import Corpus, per_nprobe_table, synthetic_corpus
from clipadapt.device import set_num_threads
from clipadapt.mudg.corpus import DTYPE, SourceCorpus, write_corpus
from clipadapt.mudg.index import CLUSTERINGS, DEFAULT_MAX_ITER, MudgIndex, build_index, default_n_clusters
from clipadapt.neighbors import knn

DEVICES = ("cpu", "cuda")
# Small enough for the plain `clipadapt bench` on 2 cores (~25 s, pairing and search dominate).
DEFAULT_N, DEFAULT_D, DEFAULT_QUERIES = 20_000, 768, 200
DEFAULT_NPROBES = (1, 2, 4, 8, 16, 32)
# Top-K retrieved per query, as MUDG retrieves, and the recalls reported.
K = 64
RECALL_AT = (1, 10, 64)
CORPUS_SHARDS = 4
_DESCRIPTIONS = {"paired": "pairing (caption -> nearest image) + clipadapt.paired_kmeans(images[pairing], captions)",
                 "standard": "clipadapt.kmeans(images), image-space centroids (the baseline)"}


def write_synthetic_corpus(data: Corpus, path: str | Path) -> SourceCorpus:
    """``data``'s images and captions as a corpus in :data:`CORPUS_SHARDS` shards (placeholder
    image paths and captions: the benchmark never reads them)."""
    n = len(data.images)
    return write_corpus(path, data.images, data.captions, [f"{i:08d}.jpg" for i in range(n)],
                        [f"synthetic caption {i}" for i in range(n)],
                        model={"architecture": "synthetic", "weights": "clipadapt.bench.data.synthetic_pairs"},
                        image_root=".", shard_rows=-(-n // CORPUS_SHARDS))


def exact_top_k(corpus: SourceCorpus, queries: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, float]:
    """The ground truth: ids int64 [nq, K] of each query's K best corpus images by inner product
    over the float16 rows the index holds (``clipadapt.knn``, exact), and the seconds it took."""
    rows = on_device(corpus.image_embeddings(), device)
    queries = on_device(queries.astype(DTYPE), device)
    (seconds,), (_, ids) = time_call(partial(knn, queries, rows, K, metric="ip"), synchronize=synchronizer(device))
    return to_numpy(ids), seconds


def run_mudg_index_benchmark(n: int = DEFAULT_N, d: int = DEFAULT_D, clusters: int | None = None, *,
                             iters: int = DEFAULT_MAX_ITER, nprobes: Sequence[int] = DEFAULT_NPROBES,
                             n_queries: int = DEFAULT_QUERIES, threads: int = 2, seed: int = 0, device: str = "cpu",
                             work_dir: str | Path | None = None,
                             json_path: str | Path | None = None) -> dict[str, Any]:
    """Build the paired and the standard index of a synthetic corpus of ``n`` pairs in
    dimension ``d``, search the held-out queries at each nprobe, print a table and return (and
    write) the result.

    Args:
        clusters: K lists (default n / 150, as build_index).
        iters: k-means iterations.
        nprobes: lists probed per query; values above K are left out.
        threads: CPU threads (set process-wide).
        seed: seeds the data and the k-means initialisation.
        device: ``"cpu"`` or ``"cuda"`` (pairing, k-means, assignment and ground truth; the
            index is searched on the host).
        work_dir: where the corpus and indexes are written (default: a temporary directory,
            removed afterwards).

    Returns:
        ``{"benchmark", "date", "command", "parameters", "machine", "reference_mm",
        "ground_truth", "corpus", "rows"}``; each row is one clustering: ``method, description,
        status`` and ``reason``, or the seconds of each phase (``pairing_seconds`` is None for
        the standard index), ``pairing_gflops``, list statistics and ``by_nprobe``: ``[{nprobe,
        recall_at_1, recall_at_10, recall_at_64, search_seconds, rows_scanned}]``.
    """
    clusters = default_n_clusters(n) if clusters is None else clusters
    probed = [nprobe for nprobe in nprobes if nprobe <= clusters]
    _check_parameters(n, clusters, probed, device)
    require_clipadapt_on(device)
    set_num_threads(threads)
    reference = measure_reference_mm("mudg-index", device, threads)
    log(f"mudg-index: generating {n} synthetic pairs (d={d}) and {n_queries} queries")
    data = synthetic_corpus(n, d, n_queries, seed=seed)
    parameters = {"n": n, "d": d, "clusters": clusters, "iters": iters, "k": K, "nprobes": probed, "threads": threads,
                  "seed": seed, "device": device, "metric": "ip", "init": "random", "dtype": DTYPE,
                  "corpus_shards": CORPUS_SHARDS, **data.description}
    with tempfile.TemporaryDirectory(prefix="clipadapt-bench-mudg-") as scratch:
        work = Path(work_dir) if work_dir is not None else Path(scratch)
        (write_seconds,), corpus = time_call(partial(write_synthetic_corpus, data, work / "corpus"),
                                             synchronize=synchronizer("cpu"))
        log(f"mudg-index: exact top-{K} of {n_queries} queries among {n} images (clipadapt.knn)")
        truth, exact_seconds = exact_top_k(corpus, data.queries, device)
        rows = [_measure(clustering, corpus, work / f"index-{clustering}", data.queries, truth, parameters)
                for clustering in CLUSTERINGS]
    sections = {"reference_mm": reference,
                "ground_truth": {"method": f"clipadapt.knn(queries, images, {K}, metric='ip'), float16",
                                 "device": device, "seconds": exact_seconds},
                "corpus": {"write_seconds": write_seconds, "shards": CORPUS_SHARDS}, "rows": rows}
    return publish_result("mudg-index", parameters, threads, sections, format_mudg_index_table, json_path)


def _check_parameters(n: int, clusters: int, nprobes: Sequence[int], device: str) -> None:
    if device not in DEVICES:
        raise ValueError(f"device: unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if n < K:
        raise ValueError(f"n: need at least {K} pairs (the top-{K} is searched), got {n}")
    if not 1 <= clusters <= n:
        raise ValueError(f"clusters: need 1 <= clusters <= n={n}, got {clusters}")
    if not nprobes or min(nprobes) < 1:
        raise ValueError(f"nprobe: need values in [1, clusters={clusters}], got {list(nprobes)}")


def _measure(clustering: str, corpus: SourceCorpus, out: Path, queries: np.ndarray, truth: np.ndarray,
             parameters: dict[str, Any]) -> dict[str, Any]:
    """One clustering's row: its index built (timed per phase by build_index) and searched."""
    row = {"method": clustering, "description": _DESCRIPTIONS[clustering]}
    log(f"mudg-index: {clustering}: building ({_DESCRIPTIONS[clustering]})")
    try:
        index = build_index(corpus, out, n_clusters=parameters["clusters"], max_iter=parameters["iters"],
                            clustering=clustering, seed=parameters["seed"], device=parameters["device"],
                            resume=False, progress=False)
        by_nprobe = [_search(index, queries, nprobe, truth) for nprobe in parameters["nprobes"]]
    except (RuntimeError, MemoryError) as error:
        log(f"mudg-index: {clustering} failed: {error}")
        return {**row, "status": "failed", "reason": f"{type(error).__name__}: {error}"}
    stages, sizes = index.info["stages"], index.info["list_sizes"]
    pairing = stages.get("pairing", {})
    phases = {"pairing_seconds": pairing.get("seconds"), "kmeans_seconds": stages["kmeans"]["seconds"],
              "add_seconds": stages["add"]["seconds"]}
    log(f"mudg-index: {clustering}: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in phases.items()
                                                  if seconds is not None))
    return {**row, "status": "ok", **phases, "build_seconds": sum(s for s in phases.values() if s is not None),
            "pairing_gflops": pairing.get("gflops"), "kmeans_splits": int(sum(stages["kmeans"]["splits"])),
            "list_imbalance": sizes["imbalance"], "empty_lists": sizes["empty"], "largest_list": sizes["max"],
            "by_nprobe": by_nprobe}


def _search(index: MudgIndex, queries: np.ndarray, nprobe: int, truth: np.ndarray) -> dict[str, Any]:
    """Recall@{1,10,64} of one timed search of every query at ``nprobe``, and the mean rows in
    the lists a query probes."""
    (seconds,), (_, found) = time_call(partial(index.search, queries, K, nprobe), synchronize=synchronizer("cpu"))
    centroids = np.asarray(index.ivf.centroids, dtype=DTYPE)
    _, probes = knn(queries.astype(DTYPE), centroids, nprobe, metric="ip")
    rows_scanned = index.ivf.list_sizes()[probes].sum(axis=1).mean()
    recalls = {f"recall_at_{k}": recall_at_k(found[:, :k], truth[:, :k]) for k in RECALL_AT}
    return {"nprobe": nprobe, **recalls, "search_seconds": seconds, "rows_scanned": float(rows_scanned)}


def format_mudg_index_table(result: dict[str, Any]) -> str:
    """The recall table (one line per nprobe) and the build table (one line per clustering),
    with a legend."""
    p, rows = result["parameters"], result["rows"]
    title = (f"MUDG source index, text queries -> images: n={p['n']} pairs, d={p['d']}, K={p['clusters']} lists, "
             f"{p['iters']} k-means iterations (seed {p['seed']}), {p['n_queries']} queries, top-{p['k']}, "
             f"{p['dtype']} rows, on {p['device']}, {p['threads']} threads; {p['n_classes']} classes, gap={p['gap']}, "
             f"noise={p['noise']}")
    recall_table = per_nprobe_table(rows, p["nprobes"], {f"R@{k}": (f"recall_at_{k}", ".4f") for k in RECALL_AT})
    cost_table = per_nprobe_table(rows, p["nprobes"], {"rows read": ("rows_scanned", ".0f"),
                                                        "search s": ("search_seconds", ".3f")})
    headers = ["index", "pairing s", "pairing GFLOP/s", "k-means s", "add s", "build s", "imbalance", "empty",
               "largest", "what"]
    legend = [(f"R@k = mean |found top-k ∩ exact top-k| / k at each nprobe; exact = "
               f"{result['ground_truth']['method']} ({result['ground_truth']['seconds']:.2f} s)"),
              f"pairing GFLOP/s = 2 n^2 d / pairing s; {describe_reference_mm(result['reference_mm'])}",
              "rows read = mean rows in the lists a query probes; imbalance = K * sum(list size^2) / n^2"]
    return "\n".join([title, recall_table, "", cost_table, "",
                      format_table(headers, [_build_row(row) for row in rows], align="lrrrrrrrrl"), *legend])


def _build_row(row: dict[str, Any]) -> list[str]:
    if row["status"] != "ok":
        return [row["method"], *["-"] * 8, f"{row['status']} ({row['reason']})"]
    return [row["method"], optional_number(row["pairing_seconds"]), optional_number(row["pairing_gflops"], ".1f"),
            f"{row['kmeans_seconds']:.2f}", f"{row['add_seconds']:.2f}",
            f"{row['build_seconds']:.2f}", f"{row['list_imbalance']:.2f}", str(row["empty_lists"]),
            str(row["largest_list"]), row["description"]]
