"""k-NN graph benchmark: clipadapt against faiss, scikit-learn and torch, with recall@k
measured against a float64 oracle.

Every method builds the exact graph of the same CLIP-like unit rows (:func:`synthetic_clip`):
queries = database = x, self excluded, inner product (= cosine on unit rows).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from clipadapt.bench.common import (cuda_sync, describe_reference_mm, format_table, import_or_unavailable, log,
                                    measure_reference_mm, MethodUnavailable, no_sync, optional_number,
                                    publish_result, recall_at_k, Skipped, time_call, to_torch)
from clipadapt.bench.data import synthetic_clip
from clipadapt.device import cuda_available, set_num_threads
from clipadapt.neighbors import knn_graph

FAMILIES = ("clipadapt", "faiss", "sklearn", "torch")
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_N, DEFAULT_D, DEFAULT_K = 20_000, 512, 10
# Above this n scikit-learn runs only when asked for by name: its brute force is slow.
SKLEARN_AUTO_MAX_N = 50_000
# Working set of one chunk of scores (torch queries on the CPU, oracle database rows).
_CHUNK_BYTES = 256 * 2**20
# On a GPU torch gets larger chunks, so its matmuls are not too skinny to reach full rate.
_CUDA_CHUNK_BYTES = 4 * 2**30
# Rows of the warm-up graph each method builds before it is timed.
_WARMUP_ROWS = 1024


@dataclass(frozen=True)
class Method:
    """One way to build the k-NN graph: a library at one precision.

    Attributes:
        name: row label, e.g. ``"torch-bf16"``.
        family: the library, one of :data:`FAMILIES`.
        precision: arithmetic of the dot products: the input dtype, or ``"tf32"``.
        prepare: host float32 rows -> the method's input (dtype, device); not timed.
        build: (input, k) -> int64 neighbour ids [n, k] without self, in any array library.
        synchronize: waits for the device work ``build`` queued.
    """

    name: str
    family: str
    precision: str
    prepare: Callable[[np.ndarray], Any]
    build: Callable[[Any, int], Any]
    synchronize: Callable[[], None] = no_sync

    @property
    def exact(self) -> bool:
        """True when the scores are full float32 products (recall@k should be 1)."""
        return self.precision == "float32"

    def run(self, inputs: Any, k: int) -> Any:
        """Build the graph of ``inputs`` and wait until it is done: the timed call."""
        indices = self.build(inputs, k)
        self.synchronize()
        return indices


@dataclass(frozen=True)
class _Setup:
    device: str
    dtype: str
    threads: int

    @property
    def synchronize(self) -> Callable[[], None]:
        return cuda_sync if self.device == "cuda" else no_sync


def plan_methods(families: Sequence[str] | None, *, n: int, device: str = "cpu", dtype: str = "float32",
                 threads: int = 2) -> list[Method | Skipped]:
    """The methods of ``families`` (all of :data:`FAMILIES` when None) that can run here, and the
    ones that cannot as :class:`Skipped`. Sets each library's thread count to ``threads``.

    scikit-learn is skipped above :data:`SKLEARN_AUTO_MAX_N` rows unless ``families`` names it.
    """
    unknown = sorted(set(families or ()) - set(FAMILIES))
    if unknown:
        raise ValueError(f"methods: unknown {', '.join(unknown)}; use some of {', '.join(FAMILIES)}")
    setup = _Setup(device=device, dtype=dtype, threads=threads)
    planned: list[Method | Skipped] = []
    for family in FAMILIES if families is None else families:
        if family == "sklearn" and families is None and n > SKLEARN_AUTO_MAX_N:
            planned.append(Skipped("sklearn", "too slow at this n"))
            continue
        try:
            planned.extend(_METHOD_FACTORIES[family](setup))
        except MethodUnavailable as why:
            planned.append(Skipped(family, str(why)))
    return planned


def _clipadapt_methods(setup: _Setup) -> list[Method]:
    if setup.device == "cuda" and not cuda_available():
        raise MethodUnavailable("no usable CUDA device (clipadapt built without CUDA, or none visible)")
    on_host_numpy = setup.device == "cpu" and setup.dtype != "bfloat16"
    if not on_host_numpy:
        import_or_unavailable("torch", f"{setup.dtype} on {setup.device} is passed as a torch tensor")
    set_num_threads(setup.threads)
    prepare = (partial(_numpy_input, dtype=setup.dtype) if on_host_numpy
               else partial(to_torch, device=setup.device, dtype=setup.dtype))
    variants = [("clipadapt", setup.dtype, "exact")]
    if setup.device == "cuda" and setup.dtype == "float32":
        variants.append(("clipadapt-tf32", "tf32", "tf32"))
    return [Method(name, "clipadapt", precision, prepare, partial(_clipadapt_graph, compute=compute),
                   setup.synchronize)
            for name, precision, compute in variants]


def _clipadapt_graph(x: Any, k: int, *, compute: str) -> Any:
    return knn_graph(x, k, metric="ip", compute=compute).indices


def _faiss_methods(setup: _Setup) -> list[Method]:
    faiss = import_or_unavailable("faiss", "pip install faiss-cpu")
    _require_float32(setup, "faiss IndexFlatIP")
    if setup.device == "cuda" and not hasattr(faiss, "StandardGpuResources"):
        raise MethodUnavailable("this faiss build has no GPU support (faiss-cpu)")
    faiss.omp_set_num_threads(setup.threads)
    gpu_resources = faiss.StandardGpuResources() if setup.device == "cuda" else None
    return [Method("faiss", "faiss", "float32", np.ascontiguousarray,
                   partial(_faiss_graph, gpu_resources=gpu_resources))]


def _faiss_graph(x: np.ndarray, k: int, *, gpu_resources: Any = None) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    if gpu_resources is not None:
        index = faiss.index_cpu_to_gpu(gpu_resources, 0, index)
    index.add(x)
    _, neighbours = index.search(x, k + 1)
    return drop_self(neighbours)


def _sklearn_methods(setup: _Setup) -> list[Method]:
    import_or_unavailable("sklearn", "pip install scikit-learn")
    _require_float32(setup, "the scikit-learn baseline")
    if setup.device == "cuda":
        raise MethodUnavailable("scikit-learn runs on the CPU only")
    return [Method("sklearn", "sklearn", "float32", np.ascontiguousarray,
                   partial(_sklearn_graph, threads=setup.threads))]


def _sklearn_graph(x: np.ndarray, k: int, *, threads: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        model = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="cosine", n_jobs=threads).fit(x)
        neighbours = model.kneighbors(x, return_distance=False)
    return drop_self(neighbours)


def _torch_methods(setup: _Setup) -> list[Method]:
    torch = import_or_unavailable("torch", "pip install torch")
    if setup.device == "cuda" and not torch.cuda.is_available():
        raise MethodUnavailable("torch sees no CUDA device")
    torch.set_num_threads(setup.threads)
    variants = [("torch", setup.dtype, setup.dtype, False)]
    if setup.device == "cuda" and setup.dtype == "float32":
        variants += [("torch-tf32", "float32", "tf32", True), ("torch-bf16", "bfloat16", "bfloat16", False)]
    return [Method(name, "torch", precision, partial(to_torch, device=setup.device, dtype=input_dtype),
                   partial(_torch_graph, allow_tf32=allow_tf32), setup.synchronize)
            for name, input_dtype, precision, allow_tf32 in variants]


def _torch_graph(x: Any, k: int, *, allow_tf32: bool = False) -> Any:
    """Chunked ``q @ x.T`` + ``topk``; each chunk's score matrix stays near 256 MB (4 GB on a GPU)."""
    import torch

    n = x.shape[0]
    chunk_bytes = _CUDA_CHUNK_BYTES if x.device.type == "cuda" else _CHUNK_BYTES
    rows_per_chunk = max(1, chunk_bytes // (n * x.element_size()))
    indices = torch.empty((n, k), dtype=torch.int64, device=x.device)
    with _cuda_tf32(allow_tf32):
        for start in range(0, n, rows_per_chunk):
            stop = min(n, start + rows_per_chunk)
            scores = x[start:stop] @ x.T
            rows = torch.arange(stop - start, device=x.device)
            scores[rows, rows + start] = -torch.inf
            indices[start:stop] = scores.topk(k, dim=1).indices
    return indices


@contextmanager
def _cuda_tf32(allowed: bool) -> Iterator[None]:
    """Let float32 CUDA matmuls use TF32 tensor cores (or not) for the duration."""
    import torch

    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


_METHOD_FACTORIES: dict[str, Callable[[_Setup], list[Method]]] = {
    "clipadapt": _clipadapt_methods, "faiss": _faiss_methods, "sklearn": _sklearn_methods, "torch": _torch_methods}


def _require_float32(setup: _Setup, what: str) -> None:
    if setup.dtype != "float32":
        raise MethodUnavailable(f"{what} is compared in float32 only")


def _numpy_input(x: np.ndarray, *, dtype: str) -> np.ndarray:
    return x.astype(dtype, copy=False)


def drop_self(neighbours: np.ndarray) -> np.ndarray:
    """[n, k+1] neighbour ids of rows 0..n-1 of the database itself -> [n, k] without self:
    drops the column equal to the row id, or the last column where the row id is absent."""
    n, width = neighbours.shape
    is_self = neighbours == np.arange(n)[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    return neighbours[~is_self].reshape(n, width - 1)


def exact_neighbours(x: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The oracle: ids [len(rows), k] of the k largest float64 inner products of ``x[rows]``
    with all rows of ``x``, self excluded (unordered). Database rows go in float64 chunks."""
    queries = x[rows].astype(np.float64)
    best_scores = np.empty((len(rows), 0))
    best_ids = np.empty((len(rows), 0), dtype=np.int64)
    block_rows = max(k, _CHUNK_BYTES // (8 * len(rows)))
    for start in range(0, len(x), block_rows):
        stop = min(len(x), start + block_rows)
        scores = queries @ x[start:stop].astype(np.float64).T
        own = (rows >= start) & (rows < stop)
        scores[np.flatnonzero(own), rows[own] - start] = -np.inf
        ids = np.broadcast_to(np.arange(start, stop), scores.shape)
        block_scores, block_ids = _top_k(scores, ids, k)
        best_scores, best_ids = _top_k(np.hstack([best_scores, block_scores]), np.hstack([best_ids, block_ids]), k)
    return best_ids


def _top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The (unordered) k best scores of each row and their ids."""
    if scores.shape[1] <= k:
        return scores, ids
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return np.take_along_axis(scores, best, axis=1), np.take_along_axis(ids, best, axis=1)


def run_knn_benchmark(n: int, d: int, k: int, *, threads: int = 2, seed: int = 0,
                      methods: Sequence[str] | None = None, dtype: str = "float32", device: str = "cpu",
                      oracle_queries: int = 1000, repeats: int = 1, json_path: str | Path | None = None
                      ) -> dict[str, Any]:
    """Time the exact k-NN graph of ``synthetic_clip(n, d, seed=seed)`` with each method, check
    recall@k against a float64 oracle, print a table and return (and write) the results.

    Args:
        n, d, k: rows, dimension, neighbours per row (1 <= k < n).
        threads: CPU threads of every library (set process-wide).
        seed: seeds the data and the oracle's query rows.
        methods: families to run, of :data:`FAMILIES`; None runs all (scikit-learn only up to
            :data:`SKLEARN_AUTO_MAX_N` rows).
        dtype: input dtype, one of :data:`DTYPES` (faiss and scikit-learn take float32 only).
        device: ``"cpu"`` or ``"cuda"``; on CUDA torch also runs TF32 and bfloat16 variants and
            clipadapt a TF32 one.
        oracle_queries: rows whose neighbours are checked against the oracle.
        repeats: timed runs per method; the fastest is reported.
        json_path: where to write the result as JSON, if anywhere.

    Returns:
        ``{"benchmark", "date", "command", "parameters", "machine", "reference_mm", "rows"}``;
        each row has ``method, family, precision, status`` (``ok``, ``skipped`` or ``failed``) and
        ``reason``, or ``seconds, seconds_all, recall_at_k, gflops, ratio_clipadapt_over_method,
        fraction_of_mm_rate``.
    """
    _check_parameters(n, k, device, dtype, oracle_queries, repeats)
    parameters = {"n": n, "d": d, "k": k, "threads": threads, "seed": seed, "methods": methods, "dtype": dtype,
                  "device": device, "oracle_queries": oracle_queries, "repeats": repeats,
                  "data": "synthetic_clip(n, d, seed=seed)", "metric": "ip (cosine on unit rows), self excluded"}
    planned = plan_methods(methods, n=n, device=device, dtype=dtype, threads=threads)
    log(f"knn: generating synthetic_clip(n={n}, d={d}, seed={seed})")
    x, _ = synthetic_clip(n, d, seed=seed)
    oracle_rows = np.sort(np.random.default_rng(seed).choice(n, size=min(oracle_queries, n), replace=False))
    log(f"knn: float64 oracle on {len(oracle_rows)} query rows")
    truth = exact_neighbours(x, oracle_rows, k)
    # bfloat16 rows run bfloat16 tiles: their yardstick is torch's bfloat16 mm (oneDNN's
    # AVX-512 BF16 / AMX kernels on the CPU), the machine's bfloat16 rate.
    reference = measure_reference_mm("knn", device, threads, "bfloat16" if dtype == "bfloat16" else None)
    rows = [_measure(entry, x, k, repeats, oracle_rows, truth) for entry in planned]
    _add_relative_columns(rows, flops=2.0 * n * n * d, reference_gflops=reference.get("gflops"))
    return publish_result("knn", parameters, threads, {"reference_mm": reference, "rows": rows}, format_knn_table,
                          json_path)


def _check_parameters(n: int, k: int, device: str, dtype: str, oracle_queries: int, repeats: int) -> None:
    if device not in DEVICES:
        raise ValueError(f"device: unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype: unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    if not 1 <= k < n:
        raise ValueError(f"k: need 1 <= k < n, got k={k}, n={n}")
    if oracle_queries < 1 or repeats < 1:
        raise ValueError(f"oracle_queries and repeats must be >= 1, got {oracle_queries} and {repeats}")


def _measure(entry: Method | Skipped, x: np.ndarray, k: int, repeats: int, oracle_rows: np.ndarray,
             truth: np.ndarray) -> dict[str, Any]:
    """One table row: the method timed after a warm-up on a slice, with its recall@k, or why not."""
    if isinstance(entry, Skipped):
        log(f"knn: {entry.name} skipped: {entry.reason}")
        return {"method": entry.name, "family": entry.name, "status": "skipped", "reason": entry.reason}
    row = {"method": entry.name, "family": entry.family, "precision": entry.precision}
    log(f"knn: {entry.name}: warm-up, then {repeats} timed run(s)")
    try:
        warm_up(entry, x, k)
        seconds, indices = time_call(partial(entry.run, entry.prepare(x), k), synchronize=entry.synchronize,
                                     repeats=repeats)
    except (RuntimeError, MemoryError) as error:
        log(f"knn: {entry.name} failed: {error}")
        return {**row, "status": "failed", "reason": f"{type(error).__name__}: {error}"}
    recall = recall_at_k(host_rows(indices, oracle_rows), truth)
    log(f"knn: {entry.name}: {min(seconds):.3f} s, recall@{k} {recall:.4f}")
    return {**row, "status": "ok", "seconds": min(seconds), "seconds_all": seconds, "recall_at_k": recall}


def warm_up(method: Method, x: np.ndarray, k: int) -> None:
    """Build the graph of the first rows of ``x`` once, so lazy set-up (thread pools, CUDA
    context, library handles) is not timed."""
    method.run(method.prepare(x[:max(_WARMUP_ROWS, k + 1)]), k)


def host_rows(indices: Any, rows: np.ndarray) -> np.ndarray:
    """``indices[rows]`` as a numpy array, whichever library and device ``indices`` lives in."""
    if hasattr(indices, "cpu"):
        import torch

        return indices[torch.as_tensor(rows, device=indices.device)].cpu().numpy()
    return np.asarray(indices[rows])


def _add_relative_columns(rows: list[dict[str, Any]], *, flops: float, reference_gflops: float | None) -> None:
    """Fill in GFLOP/s, the fraction of the reference mm rate and clipadapt's time over each
    method's (against the clipadapt row of the same precision, else the first clipadapt row)."""
    timed = [row for row in rows if row["status"] == "ok"]
    clipadapt_seconds = {row["precision"]: row["seconds"] for row in timed if row["family"] == "clipadapt"}
    for row in timed:
        ours = clipadapt_seconds.get(row["precision"], next(iter(clipadapt_seconds.values()), None))
        row["gflops"] = flops / row["seconds"] / 1e9
        row["fraction_of_mm_rate"] = row["gflops"] / reference_gflops if reference_gflops else None
        row["ratio_clipadapt_over_method"] = ours / row["seconds"] if ours is not None else None


def format_knn_table(result: dict[str, Any]) -> str:
    """The side-by-side table of a :func:`run_knn_benchmark` result, with a legend."""
    p, reference = result["parameters"], result["reference_mm"]
    headers = ["method", "precision", "time s", "ours/this", f"recall@{p['k']}", "GFLOP/s", "of mm rate", "note"]
    rows = [_table_row(row) for row in result["rows"]]
    title = (f"k-NN graph: n={p['n']} d={p['d']} k={p['k']} {p['dtype']} on {p['device']}, "
             f"{p['threads']} threads, seed {p['seed']}")
    legend = ["ours/this = clipadapt time / this method's time (< 1: clipadapt faster)",
              f"of mm rate = GFLOP/s (2*n*n*d / time) / {describe_reference_mm(reference)}"]
    return "\n".join([title, format_table(headers, rows, align="llrrrrrl"), *legend])


def _table_row(row: dict[str, Any]) -> list[str]:
    if row["status"] != "ok":
        return [row["method"], row.get("precision", "-"), "-", "-", "-", "-", "-", f"{row['status']} ({row['reason']})"]
    return [row["method"], row["precision"], f"{row['seconds']:.3f}",
            optional_number(row["ratio_clipadapt_over_method"]), f"{row['recall_at_k']:.4f}", f"{row['gflops']:.1f}",
            optional_number(row["fraction_of_mm_rate"]), ""]

