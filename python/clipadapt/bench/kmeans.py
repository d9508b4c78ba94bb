"""Spherical k-means benchmark: clipadapt against faiss, a plain torch loop and, on a GPU,
flash-kmeans, in seconds per Lloyd iteration and in the objective they reach.

Every method clusters the same CLIP-like unit rows (:func:`synthetic_clip`) into K clusters by
inner product (= cosine on unit rows), with unit-norm centroids, for the same number of
iterations from the same K initial centroids: the rows ``clipadapt.kmeans(init="random")``
starts from. Every method's final centroids are scored by one function,
:func:`spherical_inertia`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from clipadapt._arrays import to_numpy
from clipadapt.bench.common import (cuda_sync, describe_reference_mm, format_table, import_or_unavailable, log,
                                    measure_reference_mm, MethodUnavailable, no_sync, on_device, optional_number,
                                    publish_result, require_clipadapt_on, Skipped, synchronizer, time_call, to_torch)
from clipadapt.bench.data import synthetic_clip
from clipadapt.clustering import kmeans
from clipadapt.device import set_num_threads

FAMILIES = ("clipadapt", "faiss", "torch", "flash-kmeans")
DEVICES = ("cpu", "cuda")
DEFAULT_N, DEFAULT_D, DEFAULT_CLUSTERS, DEFAULT_ITERS = 20_000, 512, 256, 10
# Working set of one chunk of scores [rows, K] (the torch loop, the shared objective).
_CHUNK_BYTES = 256 * 2**20
# Rows (at least; 2 K when more) of the one-iteration run each method makes before it is timed.
_WARMUP_ROWS = 4096
_LOOP_TIMING = ("(time at max_iter=iters - time at max_iter=0) / iterations run: the init and the final assignment "
                "cancel")
_FAISS_TIMING = "faiss iteration_stats: (time[last] - time[first]) / (iters - 1), faiss's set-up excluded"
_WHOLE_RUN_TIMING = "total / iters (starts from the given centroids, so there is no init)"


@dataclass(frozen=True)
class Trained:
    """One method's k-means run.

    Attributes:
        centroids: host float32 [K, d] after the last update.
        seconds_per_iteration: one assignment + update, measured as ``timing`` says.
        total_seconds: the whole timed call.
        timing: how ``seconds_per_iteration`` was obtained.
    """

    centroids: np.ndarray
    seconds_per_iteration: float
    total_seconds: float
    timing: str


@dataclass(frozen=True)
class Method:
    """One spherical k-means implementation on one device.

    Attributes:
        name: row label.
        family: the library, one of :data:`FAMILIES`.
        device: ``"cpu"`` or ``"cuda"``.
        prepare: host float32 rows -> the method's input (library, device); not timed.
        train: (input, host initial centroids [K, d], iterations) -> :class:`Trained`.
    """

    name: str
    family: str
    device: str
    prepare: Callable[[np.ndarray], Any]
    train: Callable[[Any, np.ndarray, int], Trained]


@dataclass(frozen=True)
class _Setup:
    device: str
    threads: int
    seed: int

    @property
    def synchronize(self) -> Callable[[], None]:
        return synchronizer(self.device)


def plan_methods(families: Sequence[str] | None, *, device: str = "cpu", threads: int = 2,
                 seed: int = 0) -> list[Method | Skipped]:
    """The methods of ``families`` (all of :data:`FAMILIES` when None) that can run on ``device``,
    and the ones that cannot as :class:`Skipped`. Sets each library's thread count to ``threads``."""
    unknown = sorted(set(families or ()) - set(FAMILIES))
    if unknown:
        raise ValueError(f"methods: unknown {', '.join(unknown)}; use some of {', '.join(FAMILIES)}")
    setup = _Setup(device=device, threads=threads, seed=seed)
    planned: list[Method | Skipped] = []
    for family in FAMILIES if families is None else families:
        try:
            planned.append(_METHOD_FACTORIES[family](setup))
        except MethodUnavailable as why:
            planned.append(Skipped(family, str(why), device))
    return planned


def _clipadapt_method(setup: _Setup) -> Method:
    require_clipadapt_on(setup.device)
    set_num_threads(setup.threads)
    return Method("clipadapt", "clipadapt", setup.device, partial(on_device, device=setup.device),
                  partial(_clipadapt_train, seed=setup.seed, synchronize=setup.synchronize))


def _clipadapt_train(x: Any, initial: np.ndarray, iters: int, *, seed: int,
                     synchronize: Callable[[], None]) -> Trained:
    """``clipadapt.kmeans(init="random")`` (which starts from ``initial``), timed at ``iters``
    and at 0 iterations; the difference is the loop."""
    run = partial(kmeans, x, len(initial), metric="ip", init="random", seed=seed)
    (total,), result = time_call(partial(run, max_iter=iters), synchronize=synchronize)
    (overhead,), _ = time_call(partial(run, max_iter=0), synchronize=synchronize)
    # A run that reaches a fixed point stops early; its iterations cost what the others do.
    return Trained(to_numpy(result.centroids), (total - overhead) / result.n_iter, total, _LOOP_TIMING)


def _faiss_method(setup: _Setup) -> Method:
    faiss = import_or_unavailable("faiss", "pip install faiss-cpu")
    if setup.device == "cuda" and not hasattr(faiss, "StandardGpuResources"):
        raise MethodUnavailable("this faiss build has no GPU support (faiss-cpu)")
    faiss.omp_set_num_threads(setup.threads)
    return Method("faiss", "faiss", setup.device, np.ascontiguousarray,
                  partial(_faiss_train, seed=setup.seed, gpu=setup.device == "cuda"))


def _faiss_train(x: np.ndarray, initial: np.ndarray, iters: int, *, seed: int, gpu: bool) -> Trained:
    """``faiss.Kmeans(spherical=True)`` from ``initial``, on every row (no sub-sampling)."""
    import faiss

    n, d = x.shape
    # min_points_per_centroid=1: faiss only warns below it, and the warm-up has few rows.
    clustering = faiss.Kmeans(d, len(initial), niter=iters, spherical=True, seed=seed, gpu=gpu,
                              max_points_per_centroid=math.ceil(n / len(initial)) + 1, min_points_per_centroid=1)
    (total,), _ = time_call(partial(clustering.train, x, init_centroids=initial), synchronize=no_sync)
    return Trained(np.array(clustering.centroids), faiss_seconds_per_iteration(clustering.iteration_stats), total,
                   _FAISS_TIMING)


def faiss_seconds_per_iteration(iteration_stats: Sequence[dict[str, float]]) -> float:
    """Mean seconds per iteration from faiss's cumulative ``time`` stamps: over the iterations
    after the first (the first stamp also holds faiss's set-up), or the one stamp there is."""
    stamps = [stats["time"] for stats in iteration_stats]
    if len(stamps) == 1:
        return stamps[0]
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def _torch_method(setup: _Setup) -> Method:
    torch = import_or_unavailable("torch", "pip install torch")
    if setup.device == "cuda" and not torch.cuda.is_available():
        raise MethodUnavailable("torch sees no CUDA device")
    torch.set_num_threads(setup.threads)
    return Method("torch", "torch", setup.device, partial(to_torch, device=setup.device),
                  partial(_whole_run_train, run=torch_spherical_kmeans, synchronize=setup.synchronize))


def torch_spherical_kmeans(x: Any, centroids: Any, iters: int) -> Any:
    """The straightforward float32 torch loop: per chunk of rows ``argmax(x @ C^T)`` and
    ``index_add_`` of the rows into their cluster's sum; C = the sums scaled to unit length
    (an empty cluster keeps its centroid). Returns C [K, d] on ``x``'s device."""
    import torch

    rows_per_chunk = max(1, _CHUNK_BYTES // (centroids.shape[0] * x.element_size()))
    for _ in range(iters):
        sums = torch.zeros_like(centroids)
        for chunk in x.split(rows_per_chunk):
            sums.index_add_(0, (chunk @ centroids.T).argmax(dim=1), chunk)
        norms = sums.norm(dim=1, keepdim=True)
        centroids = torch.where(norms > 0, sums / norms, centroids)
    return centroids


def _flash_kmeans_method(setup: _Setup) -> Method:
    if setup.device != "cuda":
        raise MethodUnavailable("GPU only: run with --device cuda")
    torch = import_or_unavailable("torch", "pip install torch")
    if not torch.cuda.is_available():
        raise MethodUnavailable("torch sees no CUDA device")
    flash = import_or_unavailable("flash_kmeans", "pip install flash-kmeans")
    return Method("flash-kmeans", "flash-kmeans", "cuda", partial(to_torch, device="cuda"),
                  partial(_whole_run_train, run=partial(_flash_kmeans_cosine, flash=flash), synchronize=cuda_sync))


def _flash_kmeans_cosine(x: Any, centroids: Any, iters: int, *, flash: Any) -> Any:
    """``flash_kmeans.batch_kmeans_Cosine`` on a batch of one, all ``iters`` iterations (tol 0)."""
    result = flash.batch_kmeans_Cosine(x[None], centroids.shape[0], max_iters=iters, tol=0.0,
                                       init_centroids=centroids[None])
    return result[1][0]


def _whole_run_train(x: Any, initial: np.ndarray, iters: int, *, run: Callable[[Any, Any, int], Any],
                     synchronize: Callable[[], None]) -> Trained:
    """``run(x, initial centroids on x's device, iters)`` timed whole, divided by ``iters``."""
    start = to_torch(initial, device=x.device.type)
    (total,), centroids = time_call(partial(run, x, start, iters), synchronize=synchronize)
    return Trained(to_numpy(centroids), total / iters, total, _WHOLE_RUN_TIMING)


_METHOD_FACTORIES: dict[str, Callable[[_Setup], Method]] = {
    "clipadapt": _clipadapt_method, "faiss": _faiss_method, "torch": _torch_method,
    "flash-kmeans": _flash_kmeans_method}


def initial_centroids(x: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """float32 [K, d]: the rows ``clipadapt.kmeans(x, K, init="random", seed=seed)`` starts from
    (what it returns at ``max_iter=0``), handed to every other method."""
    return to_numpy(kmeans(x, n_clusters, max_iter=0, metric="ip", init="random", seed=seed).centroids)


def spherical_inertia(x: np.ndarray, centroids: np.ndarray) -> float:
    """The objective every method is scored by: the sum over the (unit) rows of ``x`` of
    ``2 - 2 cos`` to the nearest of ``centroids`` (any norm; scaled to unit length here).
    numpy, float32 products summed in float64."""
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    unit = (centroids / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    rows_per_chunk = max(1, _CHUNK_BYTES // (4 * len(unit)))
    total = 0.0
    for start in range(0, len(x), rows_per_chunk):
        best = (x[start:start + rows_per_chunk] @ unit.T).max(axis=1)
        total += float(np.sum(2.0 - 2.0 * best.astype(np.float64)))
    return total


def run_kmeans_benchmark(n: int, d: int, n_clusters: int, *, iters: int = DEFAULT_ITERS, threads: int = 2,
                         seed: int = 0, methods: Sequence[str] | None = None, device: str = "cpu",
                         json_path: str | Path | None = None) -> dict[str, Any]:
    """Run spherical k-means on ``synthetic_clip(n, d, seed=seed)`` with each method, time the
    iterations, score the final centroids, print a table and return (and write) the results.

    Args:
        n, d, n_clusters: rows, dimension, clusters K (1 <= K <= n).
        iters: Lloyd iterations (assignment + update) of every method, >= 1.
        threads: CPU threads of every library (set process-wide).
        seed: seeds the data and the initial centroids.
        methods: families to run, of :data:`FAMILIES`; None runs all.
        device: ``"cpu"`` or ``"cuda"`` (flash-kmeans runs on CUDA only).
        json_path: where to write the result as JSON, if anywhere.

    Returns:
        ``{"benchmark", "date", "command", "parameters", "machine", "reference_mm", "rows"}``;
        each row has ``method, family, device, status`` (``ok``, ``skipped`` or ``failed``) and
        ``reason``, or ``seconds_per_iteration, total_seconds, timing, inertia,
        inertia_over_clipadapt, gflops, fraction_of_mm_rate, ratio_clipadapt_over_method``.
    """
    _check_parameters(n, d, n_clusters, iters, device)
    parameters = {"n": n, "d": d, "clusters": n_clusters, "iters": iters, "threads": threads, "seed": seed,
                  "methods": methods, "device": device, "dtype": "float32", "data": "synthetic_clip(n, d, seed=seed)",
                  "metric": "ip on unit rows (= cosine), unit-norm centroids",
                  "init": "the K rows of clipadapt.kmeans(init='random', seed=seed), for every method",
                  "objective": "sum over rows of 2 - 2 cos(row, nearest final centroid), one shared function"}
    planned = plan_methods(methods, device=device, threads=threads, seed=seed)
    log(f"kmeans: generating synthetic_clip(n={n}, d={d}, seed={seed})")
    x, _ = synthetic_clip(n, d, seed=seed)
    initial = initial_centroids(x, n_clusters, seed)
    reference = measure_reference_mm("kmeans", device, threads, dtype="float32")
    rows = [_measure(entry, x, initial, iters, seed) for entry in planned]
    _add_relative_columns(rows, flops=2.0 * n * n_clusters * d, reference_gflops=reference.get("gflops"))
    return publish_result("kmeans", parameters, threads, {"reference_mm": reference, "rows": rows},
                          format_kmeans_table, json_path)


def _check_parameters(n: int, d: int, n_clusters: int, iters: int, device: str) -> None:
    if device not in DEVICES:
        raise ValueError(f"device: unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if d < 1 or not 1 <= n_clusters <= n:
        raise ValueError(f"need d >= 1 and 1 <= clusters <= n, got d={d}, clusters={n_clusters}, n={n}")
    if iters < 1:
        raise ValueError(f"iters: must be >= 1, got {iters}")


def _measure(entry: Method | Skipped, x: np.ndarray, initial: np.ndarray, iters: int, seed: int) -> dict[str, Any]:
    """One table row: the method's iterations timed after a warm-up, its final objective, or why not."""
    if isinstance(entry, Skipped):
        log(f"kmeans: {entry.name} skipped: {entry.reason}")
        return {"method": entry.name, "family": entry.name, "device": entry.device, "status": "skipped",
                "reason": entry.reason}
    row = {"method": entry.name, "family": entry.family, "device": entry.device}
    log(f"kmeans: {entry.name}: warm-up, then {iters} timed iterations")
    try:
        warm_up(entry, x, len(initial), seed)
        trained = entry.train(entry.prepare(x), initial, iters)
    except (RuntimeError, MemoryError) as error:
        log(f"kmeans: {entry.name} failed: {error}")
        return {**row, "status": "failed", "reason": f"{type(error).__name__}: {error}"}
    inertia = spherical_inertia(x, trained.centroids)
    log(f"kmeans: {entry.name}: {trained.seconds_per_iteration:.4f} s per iteration, inertia {inertia:.2f}")
    return {**row, "status": "ok", "seconds_per_iteration": trained.seconds_per_iteration,
            "total_seconds": trained.total_seconds, "timing": trained.timing, "inertia": inertia}


def warm_up(method: Method, x: np.ndarray, n_clusters: int, seed: int) -> None:
    """One iteration on the first rows of ``x`` with all K clusters, so lazy set-up (thread
    pools, CUDA context, kernel compilation) is not timed."""
    rows = x[:min(len(x), max(_WARMUP_ROWS, 2 * n_clusters))]
    method.train(method.prepare(rows), initial_centroids(rows, n_clusters, seed), 1)


def _add_relative_columns(rows: list[dict[str, Any]], *, flops: float, reference_gflops: float | None) -> None:
    """Fill in GFLOP/s (``flops`` per iteration), the fraction of the reference mm rate, and
    clipadapt's seconds per iteration and inertia over each method's."""
    timed = [row for row in rows if row["status"] == "ok"]
    ours = next((row for row in timed if row["family"] == "clipadapt"), None)
    for row in timed:
        row["gflops"] = flops / row["seconds_per_iteration"] / 1e9
        row["fraction_of_mm_rate"] = row["gflops"] / reference_gflops if reference_gflops else None
        row["ratio_clipadapt_over_method"] = (ours["seconds_per_iteration"] / row["seconds_per_iteration"]
                                              if ours else None)
        row["inertia_over_clipadapt"] = row["inertia"] / ours["inertia"] if ours else None


def format_kmeans_table(result: dict[str, Any]) -> str:
    """The side-by-side table of a :func:`run_kmeans_benchmark` result, with a legend."""
    p = result["parameters"]
    headers = ["method", "device", "s/iter", "ours/this", "inertia", "this/ours inertia", "GFLOP/s", "of mm rate",
               "note"]
    title = (f"Spherical k-means: n={p['n']} d={p['d']} K={p['clusters']}, {p['iters']} iterations, float32 on "
             f"{p['device']}, {p['threads']} threads, seed {p['seed']}")
    timings = [f"s/iter of {row['method']} = {row['timing']}" for row in result["rows"] if row["status"] == "ok"]
    legend = ["ours/this = clipadapt's seconds per iteration / this method's (< 1: clipadapt faster)",
              "inertia = sum over rows of 2 - 2 cos(row, nearest final centroid), computed alike for every "
              "method from its final centroids; all start from the same K rows",
              f"of mm rate = GFLOP/s (2*n*K*d per iteration) / {describe_reference_mm(result['reference_mm'])}",
              *timings]
    return "\n".join([title, format_table(headers, [_table_row(row) for row in result["rows"]],
                                          align="llrrrrrrl"), *legend])


def _table_row(row: dict[str, Any]) -> list[str]:
    if row["status"] != "ok":
        return [row["method"], row["device"], *["-"] * 6, f"{row['status']} ({row['reason']})"]
    return [row["method"], row["device"], f"{row['seconds_per_iteration']:.4f}",
            optional_number(row["ratio_clipadapt_over_method"]), f"{row['inertia']:.1f}",
            optional_number(row["inertia_over_clipadapt"], ".4f"), f"{row['gflops']:.1f}",
            optional_number(row["fraction_of_mm_rate"]), ""]
