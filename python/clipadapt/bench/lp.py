"""Label propagation benchmark: clipadapt's sparse affinity and block CG against the original
ReCLIP recipe (scipy, one ``cg`` per class), a batched torch CG and, on a GPU, cupy.

The problem is ReCLIP's: n nodes, the first C of them text nodes that carry the labels (one per
class, the noise-free class directions of :func:`synthetic_clip`), the other n - C image nodes
of :func:`synthetic_clip` unlabelled. clipadapt builds the k-NN graph once; every method turns
that same graph into S = D^-1/2 W D^-1/2 (W = (A + A^T) / 2, a_ij = (1 + cos_ij) / 2) in its own
way ("normalise") and solves (I - alpha S) F = Y from F = 0 with the same stopping rule ("solve").
"""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from clipadapt._arrays import to_numpy
from clipadapt.bench.common import (copy_bandwidth, cuda_sync, format_table, import_or_unavailable, log,
                                    MethodUnavailable, no_sync, optional_number, publish_result, Skipped, time_call,
                                    to_torch)
from clipadapt.bench.data import synthetic_clip
from clipadapt.device import cuda_available, set_num_threads
from clipadapt.neighbors import KnnGraph, knn_graph
from clipadapt.propagation import affinity, conjugate_gradient

DEVICES = ("cpu", "cuda")
DEFAULT_N, DEFAULT_CLASSES, DEFAULT_D = 10_000, 100, 512
# Noise of the image nodes: at 3.0 (synthetic_clip's default is 0.6) about 3 in 4 k-NN edges of the
# default problem join nodes of one class and CG does not reach tol in 20 iterations, as on real CLIP
# features; at 0.6 the classes are disconnected clusters and CG stops after about 11 iterations.
DEFAULT_NOISE = 3.0
# The ReCLIP settings, fixed: neighbours per node, propagation strength, CG iterations and tolerance.
K, ALPHA, MAX_ITER, TOL = 20, 0.99, 20, 1e-6
# Up to this n the reference is a dense LU solve; above it, scipy cg per class run to convergence.
DENSE_REFERENCE_MAX_N = 8000
REFERENCE_RTOL, REFERENCE_MAX_ITER = 1e-12, 2000
# Nodes of the small problem every method solves once before it is timed.
_WARMUP_NODES = 1024


@dataclass(frozen=True)
class Solved:
    """A solve's output: ``scores`` F [n, C] in the method's library and device, and the CG
    iterations of each class (int64 [C], host)."""

    scores: Any
    iterations: np.ndarray


@dataclass(frozen=True)
class Method:
    """One way to propagate labels on the shared graph: a library on a device at one precision.

    Attributes:
        name: row label, e.g. ``"scipy-recipe"``.
        family: ``"clipadapt"``, ``"scipy"``, ``"torch"`` or ``"cupy"``.
        device: where it runs, ``"cpu"`` or ``"cuda"``.
        precision: dtype of S, Y and F.
        adopt: (array, dtype=None) -> the array in the method's library and device, cast to
            ``dtype`` if given; not timed.
        normalise: k-NN graph (arrays adopted) -> S in the method's own sparse format.
        solve: (S, Y adopted at ``precision``) -> :class:`Solved`.
        synchronize: waits for the device work the phases queued.
        thread_limits: a context that holds the method's libraries to the benchmark's threads
            while it runs, where setting them once up front is not enough.
    """

    name: str
    family: str
    device: str
    precision: str
    adopt: Callable[..., Any]
    normalise: Callable[[KnnGraph], Any]
    solve: Callable[[Any, Any], Solved]
    synchronize: Callable[[], None] = no_sync
    thread_limits: Callable[[], AbstractContextManager[Any]] = nullcontext

    def prepare(self, graph: KnnGraph, seeds: np.ndarray) -> tuple[KnnGraph, Any]:
        """The graph and the seed matrix Y moved into this method's library and device (not timed)."""
        adopted = KnnGraph(indices=self.adopt(graph.indices), scores=self.adopt(graph.scores), n=graph.n,
                           metric=graph.metric)
        inputs = adopted, self.adopt(seeds, dtype=self.precision)
        self.synchronize()
        return inputs

    def run(self, graph: KnnGraph, seeds: Any) -> Solved:
        """Both phases untimed, e.g. as a warm-up or a pytest-benchmark target."""
        solved = self.solve(self.normalise(graph), seeds)
        self.synchronize()
        return solved


@dataclass(frozen=True)
class Problem:
    """A seeded propagation problem on CLIP-like data.

    Attributes:
        features: float32 [n, d] unit rows: C text nodes (one per class, in class order), then images.
        seeds: float64 [n, C] Y: row c of the text nodes is one-hot at class c, image rows are zero.
        truth: int64 [n] the class of every node.
        classes: C, also the number of labelled (text) nodes.
    """

    features: np.ndarray
    seeds: np.ndarray
    truth: np.ndarray
    classes: int

    @property
    def unlabelled(self) -> slice:
        """The image nodes, where labels are compared."""
        return slice(self.classes, None)


def lp_problem(n: int, classes: int, d: int, *, noise: float = DEFAULT_NOISE, seed: int = 0) -> Problem:
    """ReCLIP-style seeding: C text nodes (the class directions of ``synthetic_clip``, no noise,
    no modality offset) labelled, then ``synthetic_clip(n - C, d, n_classes=C, noise=noise,
    seed=seed)`` image nodes unlabelled."""
    images, image_classes = synthetic_clip(n - classes, d, n_classes=classes, noise=noise, seed=seed)
    seeds = np.zeros((n, classes))
    seeds[np.arange(classes), np.arange(classes)] = 1.0
    return Problem(features=np.vstack([class_directions(classes, d, seed=seed), images]), seeds=seeds,
                   truth=np.concatenate([np.arange(classes), image_classes]), classes=classes)


def class_directions(classes: int, d: int, *, seed: int = 0) -> np.ndarray:
    """float32 [C, d]: row c is the direction of class c in ``synthetic_clip(..., seed=seed)``,
    taken from noise-free text rows (their classes are drawn at random, so draw until all occur)."""
    rows = 4 * classes
    while True:
        x, labels = synthetic_clip(rows, d, n_classes=classes, modality="text", noise=0.0, seed=seed)
        found, first_row = np.unique(labels, return_index=True)
        if len(found) == classes:
            return x[first_row]
        rows *= 2


def plan_methods(device: str = "cpu", threads: int = 2) -> list[Method | Skipped]:
    """Every method: the CPU ones always, the CUDA ones when ``device`` is ``"cuda"`` (else
    :class:`Skipped`, with the reason). Sets each library's thread count to ``threads``."""
    planned: list[Method | Skipped] = []
    for family, factory in _METHOD_FACTORIES.items():
        for method_device in DEVICES:
            try:
                planned.extend(factory(method_device, threads, device))
            except MethodUnavailable as why:
                planned.append(Skipped(family, str(why), method_device))
    return planned


def _require_device(method_device: str, run_device: str, *, torch_needed: bool = False) -> None:
    """Raises :class:`MethodUnavailable` when a CUDA method cannot or should not run now."""
    if method_device == "cpu":
        return
    if not cuda_available():
        raise MethodUnavailable("no usable CUDA device (clipadapt built without CUDA, or none visible)")
    if run_device != "cuda":
        raise MethodUnavailable("CUDA method: run with --device cuda")
    if torch_needed and not import_or_unavailable("torch", "pip install torch").cuda.is_available():
        raise MethodUnavailable("torch sees no CUDA device")


def _clipadapt_methods(device: str, threads: int, run_device: str) -> list[Method]:
    _require_device(device, run_device, torch_needed=True)
    set_num_threads(threads)
    adopt = _as_numpy if device == "cpu" else partial(to_torch, device=device)
    synchronize = cuda_sync if device == "cuda" else no_sync
    return [Method(f"clipadapt-{_short(precision)}", "clipadapt", device, precision, adopt,
                   partial(affinity, dtype=precision), _clipadapt_solve, synchronize)
            for precision in ("float64", "float32")]


def _clipadapt_solve(matrix: Any, seeds: Any) -> Solved:
    solved = conjugate_gradient(matrix, seeds, alpha=ALPHA, max_iter=MAX_ITER, tol=TOL)
    return Solved(solved.solution, to_numpy(solved.iterations))


def _scipy_methods(device: str, threads: int, run_device: str) -> list[Method]:
    if device == "cuda":  # its GPU twin is cupy-recipe
        return []
    sparse = import_or_unavailable("scipy.sparse", "pip install scipy")
    linalg = import_or_unavailable("scipy.sparse.linalg", "pip install scipy")
    return [_recipe_method("scipy-recipe", "scipy", "cpu", xp=np, sparse=sparse, cg=linalg.cg, adopt=_as_numpy,
                           thread_limits=partial(numpy_blas_threads, threads))]


def numpy_blas_threads(threads: int) -> AbstractContextManager[Any]:
    """A context that holds the BLAS libraries numpy and scipy call (the recipe's dot products,
    the dense reference solve) to ``threads`` threads.

    Scoped rather than process-wide: threadpoolctl limits every BLAS it finds, clipadapt's own
    OpenBLAS included, which the k-NN kernel keeps at one thread inside its OpenMP threads.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def _torch_methods(device: str, threads: int, run_device: str) -> list[Method]:
    torch = import_or_unavailable("torch", "pip install torch")
    _require_device(device, run_device, torch_needed=True)
    torch.set_num_threads(threads)
    synchronize = cuda_sync if device == "cuda" else no_sync
    return [Method(f"torch-cg-{_short(precision)}", "torch", device, precision, partial(to_torch, device=device),
                   partial(torch_affinity, dtype=precision), torch_block_cg, synchronize)
            for precision in ("float64", "float32")]


def _cupy_methods(device: str, threads: int, run_device: str) -> list[Method]:
    if device == "cpu":
        return []
    _require_device(device, run_device)
    cupy = import_or_unavailable("cupy", "pip install cupy-cuda12x")
    sparse = import_or_unavailable("cupyx.scipy.sparse", "pip install cupy-cuda12x")
    linalg = import_or_unavailable("cupyx.scipy.sparse.linalg", "pip install cupy-cuda12x")
    return [_recipe_method("cupy-recipe", "cupy", "cuda", xp=cupy, sparse=sparse, cg=linalg.cg,
                           adopt=partial(_as_cupy, cupy=cupy), synchronize=cupy.cuda.runtime.deviceSynchronize)]


def _recipe_method(name: str, family: str, device: str, *, xp: ModuleType, sparse: ModuleType,
                   cg: Callable[..., Any], adopt: Callable[..., Any], synchronize: Callable[[], None] = no_sync,
                   thread_limits: Callable[[], AbstractContextManager[Any]] = nullcontext) -> Method:
    """The ReCLIP recipe (:func:`recipe_affinity`, then :func:`per_class_cg`) on one array stack."""
    return Method(name, family, device, "float64", adopt, partial(recipe_affinity, xp=xp, sparse=sparse),
                  partial(per_class_cg, cg=_bound_cg(cg, TOL, MAX_ITER), sparse=sparse, xp=xp), synchronize,
                  thread_limits)


_METHOD_FACTORIES: dict[str, Callable[[str, int, str], list[Method]]] = {
    "clipadapt": _clipadapt_methods, "scipy": _scipy_methods, "torch": _torch_methods, "cupy": _cupy_methods}


def _bound_cg(cg: Callable[..., Any], rtol: float, maxiter: int) -> Callable[..., Any]:
    """``cg`` with its relative tolerance and iteration cap bound: the keyword is ``rtol`` in
    scipy >= 1.12 and recent cupy, ``tol`` before."""
    tolerance = "rtol" if "rtol" in inspect.signature(cg).parameters else "tol"
    return partial(cg, maxiter=maxiter, **{tolerance: rtol})


def _short(precision: str) -> str:
    return {"float64": "f64", "float32": "f32"}[precision]


def _as_numpy(array: Any, dtype: str | None = None) -> np.ndarray:
    host = to_numpy(array)
    return host if dtype is None else host.astype(dtype, copy=False)


def _as_cupy(array: Any, dtype: str | None = None, *, cupy: ModuleType) -> Any:
    return cupy.asarray(array, dtype=dtype)


def recipe_affinity(graph: KnnGraph, *, xp: ModuleType, sparse: ModuleType) -> Any:
    """S as the ReCLIP code builds it, with numpy + scipy.sparse (or cupy + cupyx.scipy.sparse):
    A from the k-NN lists, W = (A + A^T) / 2, degrees (0 -> 1), S = D^-1/2 W D^-1/2, float64 CSR."""
    n, k = graph.indices.shape
    rows = xp.repeat(xp.arange(n), k)
    weights = (1.0 + graph.scores.ravel().astype(xp.float64)) / 2.0
    adjacency = sparse.coo_matrix((weights, (rows, graph.indices.ravel())), shape=(n, n)).tocsr()
    symmetric = (adjacency + adjacency.T) * 0.5
    degrees = xp.asarray(symmetric.sum(axis=1)).ravel()
    degrees[degrees == 0] = 1.0
    scaling = sparse.diags(1.0 / xp.sqrt(degrees))
    return (scaling @ symmetric @ scaling).tocsr()


def per_class_cg(matrix: Any, seeds: Any, *, cg: Callable[..., tuple[Any, int]], sparse: ModuleType,
                 xp: ModuleType, progress: Callable[[int], None] | None = None) -> Solved:
    """The ReCLIP loop: ``cg(I - alpha S, y_c)`` from x0 = 0, one class column at a time.

    Args:
        matrix: S, scipy (or cupyx) sparse [n, n].
        seeds: Y [n, C] (numpy or cupy).
        cg: ``scipy.sparse.linalg.cg`` (or cupy's) with its tolerance and ``maxiter`` bound.
        sparse, xp: the sparse and dense array modules of ``matrix`` and ``seeds``.
        progress: called with the number of classes solved after each one.
    """
    n, classes = seeds.shape
    operator = sparse.identity(n, dtype=matrix.dtype, format="csr") - ALPHA * matrix
    scores = xp.empty_like(seeds)
    iterations = np.zeros(classes, dtype=np.int64)
    for column in range(classes):
        counter = _IterationCounter()
        scores[:, column], _ = cg(operator, seeds[:, column], callback=counter)
        iterations[column] = counter.count
        if progress is not None:
            progress(column + 1)
    return Solved(scores, iterations)


class _IterationCounter:
    """A ``cg`` callback that counts the iterations."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _: Any) -> None:
        self.count += 1


def torch_affinity(graph: KnnGraph, *, dtype: str) -> Any:
    """S with torch.sparse ops on the graph's device, the straightforward way: A (COO) from the
    k-NN lists, W = (A + A^T) / 2 coalesced, degrees (0 -> 1), D^-1/2 W D^-1/2 as CSR."""
    import torch

    n, k = graph.indices.shape
    rows = torch.arange(n, device=graph.indices.device).repeat_interleave(k)
    weights = (1.0 + graph.scores.reshape(-1).to(getattr(torch, dtype))) / 2.0
    adjacency = torch.sparse_coo_tensor(torch.stack([rows, graph.indices.reshape(-1)]), weights, (n, n),
                                        check_invariants=False)
    symmetric = ((adjacency + adjacency.t()) * 0.5).coalesce()
    degrees = torch.sparse.sum(symmetric, dim=1).to_dense()
    inverse_sqrt = torch.where(degrees > 0, degrees, 1.0).rsqrt()
    row, column = symmetric.indices()
    values = symmetric.values() * inverse_sqrt[row] * inverse_sqrt[column]
    normalised = torch.sparse_coo_tensor(symmetric.indices(), values, (n, n), is_coalesced=True,
                                         check_invariants=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return normalised.to_sparse_csr()


def torch_block_cg(matrix: Any, seeds: Any) -> Solved:
    """Lock-step CG over all C columns of Y with torch.sparse SpMM, each column with its own
    step sizes (= C independent CG solves from F = 0); a column stops once ||r|| <= tol ||y||,
    all after ``MAX_ITER`` iterations."""
    import torch

    solution = torch.zeros_like(seeds)
    residual = seeds.clone()
    direction = residual.clone()
    residual_sq = (residual * residual).sum(dim=0)
    stop_sq = TOL**2 * residual_sq
    iterations = torch.zeros(seeds.shape[1], dtype=torch.int64, device=seeds.device)
    for _ in range(MAX_ITER):
        active = residual_sq > stop_sq
        if not bool(active.any()):
            break
        product = direction - ALPHA * torch.sparse.mm(matrix, direction)
        step = torch.where(active, residual_sq / (direction * product).sum(dim=0), 0.0)
        solution += step * direction
        residual -= step * product
        next_residual_sq = (residual * residual).sum(dim=0)
        direction = residual + torch.where(active, next_residual_sq / residual_sq, 0.0) * direction
        residual_sq = next_residual_sq
        iterations += active
    return Solved(solution, iterations.cpu().numpy())


def run_lp_benchmark(n: int, classes: int, d: int = DEFAULT_D, *, noise: float = DEFAULT_NOISE, threads: int = 2,
                     seed: int = 0, device: str = "cpu", repeats: int = 1,
                     json_path: str | Path | None = None) -> dict[str, Any]:
    """Propagate C labels over n nodes with every method on one shared k-NN graph, time the
    phases, compare the labels with a float64 reference solve, print a table and return (and
    write) the results.

    Args:
        n: nodes, text and image (> C + k).
        classes: C, one labelled text node each.
        d: embedding dimension.
        noise: noise of the image nodes (see :data:`DEFAULT_NOISE`).
        threads: CPU threads of every library (clipadapt, torch, the BLAS of numpy/scipy).
        seed: seeds the data.
        device: where the graph is built; ``"cuda"`` also runs the CUDA methods.
        repeats: timed runs of each phase of each method; the fastest is reported.
        json_path: where to write the result as JSON, if anywhere.

    Returns:
        ``{"benchmark", "date", "command", "parameters", "machine", "graph", "reference", "rows"}``;
        each row has ``method, family, device, precision, status`` (``ok``, ``skipped`` or
        ``failed``) and ``reason``, or the seconds of each phase (``graph_seconds`` is the shared
        graph), ``total_seconds``, ``ratio_total``/``ratio_solve`` (clipadapt's time over this
        method's, same device and precision), ``max_iterations``, ``agreement_reference``,
        ``agreement_recipe`` and ``accuracy`` (on the image nodes).
    """
    _check_parameters(n, classes, d, device, repeats)
    parameters = {"n": n, "classes": classes, "d": d, "k": K, "alpha": ALPHA, "max_iter": MAX_ITER, "tol": TOL,
                  "noise": noise, "threads": threads, "seed": seed, "device": device, "repeats": repeats,
                  "data": "C labelled text nodes (the class directions) + "
                          "synthetic_clip(n - C, d, n_classes=C, noise=noise, seed=seed) image nodes",
                  "affinity": "shifted cosine (1 + cos) / 2, W = (A + A^T) / 2, S = D^-1/2 W D^-1/2"}
    planned = plan_methods(device, threads)
    log(f"lp: measuring the memory bandwidth (a {threads}-thread copy)")
    bandwidth = copy_bandwidth(threads)
    log(f"lp: generating {classes} text + {n - classes} image nodes, d={d}, noise={noise}, seed={seed}")
    problem = lp_problem(n, classes, d, noise=noise, seed=seed)
    graph, graph_info = _shared_graph(problem.features, device)
    warmup = _warmup_problem(problem)
    measured = [_measure(entry, graph, problem.seeds, warmup, repeats) for entry in planned]
    with numpy_blas_threads(threads):
        reference, reference_info = reference_labels(graph, problem.seeds)
    rows = [row for row, _ in measured]
    _add_comparisons(rows, {_row_key(row): labels for row, labels in measured if labels is not None},
                     reference, problem, graph_info["seconds"])
    _add_bandwidth(rows, bandwidth)
    return publish_result("lp", parameters, threads, {"graph": graph_info, "reference": reference_info,
                                                       "memory_bandwidth": bandwidth, "rows": rows},
                          format_lp_table, json_path)


def _add_bandwidth(rows: list[dict[str, Any]], bandwidth: dict[str, Any]) -> None:
    """Per row: the solve's speed-up over the scipy recipe; per clipadapt CPU row also the bytes
    per second its iterations must have moved and their fraction of the measured copy bandwidth."""
    recipe = next((row for row in rows if row["method"] == "scipy-recipe" and row["status"] == "ok"), None)
    for row in rows:
        if row["status"] != "ok":
            continue
        row["speedup_over_scipy_solve"] = recipe["solve_seconds"] / row["solve_seconds"] if recipe else None
        if "bytes_per_iteration" in row and row["device"] == "cpu" and "gbytes_per_second" in bandwidth:
            moved = row["bytes_per_iteration"] * row["max_iterations"] / row["solve_seconds"] / 1e9
            row["gbytes_per_second"] = moved
            row["fraction_of_bandwidth"] = moved / bandwidth["gbytes_per_second"]


def _check_parameters(n: int, classes: int, d: int, device: str, repeats: int) -> None:
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    if device not in DEVICES:
        raise ValueError(f"device: unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if classes < 1 or d < 1:
        raise ValueError(f"classes and d must be >= 1, got {classes} and {d}")
    if n <= classes + K:
        raise ValueError(f"n: need more than classes + k = {classes + K} nodes, got n={n}")


def _shared_graph(features: np.ndarray, device: str) -> tuple[KnnGraph, dict[str, Any]]:
    """The k-NN graph every method uses, built once by clipadapt on ``device`` (after a warm-up)."""
    inputs = features if device == "cpu" else to_torch(features, device=device)
    synchronize = cuda_sync if device == "cuda" else no_sync
    knn_graph(inputs[:_WARMUP_NODES], K)
    log(f"lp: graph: clipadapt.knn_graph(n={len(features)}, k={K}, cosine) on {device}")
    (seconds,), graph = time_call(partial(knn_graph, inputs, K), synchronize=synchronize)
    log(f"lp: graph: {seconds:.3f} s")
    return graph, {"method": "clipadapt.knn_graph", "metric": "cosine", "k": K, "device": device, "seconds": seconds}


def _warmup_problem(problem: Problem) -> tuple[KnnGraph, np.ndarray]:
    """The graph of the first nodes and their seed rows: solved once by each method before it is
    timed, so lazy set-up (thread pools, library handles, CUDA context) is not timed."""
    nodes = min(_WARMUP_NODES, len(problem.features))
    return knn_graph(problem.features[:nodes], K), problem.seeds[:nodes]


def _measure(entry: Method | Skipped, graph: KnnGraph, seeds: np.ndarray, warmup: tuple[KnnGraph, np.ndarray],
             repeats: int) -> tuple[dict[str, Any], np.ndarray | None]:
    """One table row, with the method's argmax labels: both phases timed (fastest of ``repeats``)
    after a warm-up, or why not."""
    if isinstance(entry, Skipped):
        log(f"lp: {entry.name} on {entry.device} skipped: {entry.reason}")
        return {"method": entry.name, "family": entry.name, "device": entry.device, "status": "skipped",
                "reason": entry.reason}, None
    row = {"method": entry.name, "family": entry.family, "device": entry.device, "precision": entry.precision}
    log(f"lp: {entry.name} on {entry.device}: warm-up, then normalise and solve")
    try:
        with entry.thread_limits():
            entry.run(*entry.prepare(*warmup))
            adopted, inputs = entry.prepare(graph, seeds)
            normalise_times, matrix = time_call(partial(entry.normalise, adopted), synchronize=entry.synchronize,
                                                repeats=repeats)
            solve_times, solved = time_call(partial(entry.solve, matrix, inputs), synchronize=entry.synchronize,
                                            repeats=repeats)
    except (RuntimeError, MemoryError) as error:
        log(f"lp: {entry.name} failed: {error}")
        return {**row, "status": "failed", "reason": f"{type(error).__name__}: {error}"}, None
    normalise_seconds, solve_seconds = min(normalise_times), min(solve_times)
    log(f"lp: {entry.name} on {entry.device}: normalise {normalise_seconds:.3f} s, solve {solve_seconds:.3f} s")
    row = {**row, "status": "ok", "normalise_seconds": normalise_seconds, "solve_seconds": solve_seconds,
           "max_iterations": int(solved.iterations.max(initial=0))}
    if entry.family == "clipadapt":
        row["bytes_per_iteration"] = block_cg_bytes_per_iteration(matrix, seeds.shape[1])
    return row, argmax_labels(solved.scores)


def block_cg_bytes_per_iteration(matrix: Any, columns: int) -> int:
    """The memory traffic one iteration of the block CG must move, at the least: S once
    (indptr, int32 column ids, values) and eleven passes over an [n, C] matrix of S's dtype
    (q = p - alpha S p reads P for the gather and for p, writes Q; r -= step q reads two and
    writes one; x += step p, p = r + beta p read three and write two)."""
    n, value_bytes = matrix.shape[0], int(np.dtype(matrix.dtype).itemsize)
    return (n + 1) * 8 + matrix.nnz * (4 + value_bytes) + 11 * n * columns * value_bytes


def _row_key(row: dict[str, Any]) -> tuple[str, str]:
    return row["method"], row["device"]


def argmax_labels(scores: Any) -> np.ndarray:
    """Row argmax of F [n, C] (numpy, torch or cupy) as int64 numpy [n]."""
    return to_numpy(scores.argmax(1)).astype(np.int64)


def reference_labels(graph: KnnGraph, seeds: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Argmax labels of a float64 solve of (I - alpha S) F = Y on the scipy-recipe S, run to
    convergence: dense ``np.linalg.solve`` up to :data:`DENSE_REFERENCE_MAX_N` nodes, else
    scipy ``cg`` per class to rtol :data:`REFERENCE_RTOL`; and what was used."""
    import scipy.sparse
    import scipy.sparse.linalg

    host_graph = KnnGraph(indices=_as_numpy(graph.indices), scores=_as_numpy(graph.scores), n=graph.n,
                          metric=graph.metric)
    matrix = recipe_affinity(host_graph, xp=np, sparse=scipy.sparse)
    n, classes = seeds.shape
    if n <= DENSE_REFERENCE_MAX_N:
        log(f"lp: reference: dense np.linalg.solve, n={n}")
        scores = np.linalg.solve(np.eye(n) - ALPHA * matrix.toarray(), seeds)
        return argmax_labels(scores), {"method": "dense np.linalg.solve of (I - alpha S) F = Y, scipy-recipe S"}
    log(f"lp: reference: scipy cg per class to rtol {REFERENCE_RTOL:g} (maxiter {REFERENCE_MAX_ITER}), "
        f"{classes} classes")
    cg = _bound_cg(scipy.sparse.linalg.cg, REFERENCE_RTOL, REFERENCE_MAX_ITER)
    solved = per_class_cg(matrix, seeds, cg=cg, sparse=scipy.sparse, xp=np,
                          progress=partial(_log_reference_progress, classes=classes))
    return argmax_labels(solved.scores), {
        "method": f"scipy cg per class to rtol {REFERENCE_RTOL:g}, scipy-recipe S", "max_iterations":
        int(solved.iterations.max()), "unconverged_classes": int((solved.iterations >= REFERENCE_MAX_ITER).sum())}


def _log_reference_progress(done: int, *, classes: int) -> None:
    """A progress line at every tenth of the classes."""
    if done * 10 // classes != (done - 1) * 10 // classes:
        log(f"lp: reference: {done}/{classes} classes")


def _add_comparisons(rows: list[dict[str, Any]], labels: dict[tuple[str, str], np.ndarray], reference: np.ndarray,
                     problem: Problem, graph_seconds: float) -> None:
    """Fill in, per timed row: the shared graph time, the total, clipadapt's time over this
    method's (same device and precision), and label agreement and accuracy on the image nodes."""
    images = problem.unlabelled
    recipe = labels.get(("scipy-recipe", "cpu"))
    timed = [row for row in rows if row["status"] == "ok"]
    for row in timed:
        row["graph_seconds"] = graph_seconds
        row["total_seconds"] = graph_seconds + row["normalise_seconds"] + row["solve_seconds"]
    ours = {(row["device"], row["precision"]): row for row in timed if row["family"] == "clipadapt"}
    for row in timed:
        mine = labels[_row_key(row)][images]
        clipadapt = ours.get((row["device"], row["precision"]))
        row["ratio_total"] = clipadapt["total_seconds"] / row["total_seconds"] if clipadapt else None
        row["ratio_solve"] = clipadapt["solve_seconds"] / row["solve_seconds"] if clipadapt else None
        row["agreement_reference"] = float(np.mean(mine == reference[images]))
        row["agreement_recipe"] = float(np.mean(mine == recipe[images])) if recipe is not None else None
        row["accuracy"] = float(np.mean(mine == problem.truth[images]))


def format_lp_table(result: dict[str, Any]) -> str:
    """The side-by-side table of a :func:`run_lp_benchmark` result, with a legend."""
    p, graph, reference = result["parameters"], result["graph"], result["reference"]
    headers = ["method", "device", "precision", "graph s", "normalise s", "solve s", "total s", "ours/this total",
               "ours/this solve", "scipy/this solve", "MB/iter", "GB/s", "of copy BW", "iters", "=ref", "=recipe",
               "accuracy", "note"]
    title = (f"Label propagation: n={p['n']} ({p['classes']} labelled text + {p['n'] - p['classes']} image nodes), "
             f"C={p['classes']}, d={p['d']}, noise={p['noise']}, k={p['k']}, alpha={p['alpha']}, "
             f"max_iter={p['max_iter']}, tol={p['tol']:g}, {p['threads']} threads, seed {p['seed']}")
    converged = ("" if "unconverged_classes" not in reference else
                 f"; up to {reference['max_iterations']} iterations, {reference['unconverged_classes']} classes "
                 "unconverged")
    legend = [f"graph = clipadapt.knn_graph on {graph['device']}, built once and shared by every method; "
              "total = graph + normalise + solve",
              "ours/this = clipadapt's time / this method's, same device and precision (< 1: clipadapt faster)",
              "iters = most CG iterations of any class; =ref, =recipe, accuracy: fraction of the image nodes whose "
              "argmax label equals the reference's, the scipy recipe's, the synthetic class",
              f"reference: {reference['method']}{converged}",
              "scipy/this solve = the scipy recipe's solve time / this method's (> 1: this method faster); MB/iter = "
              "bytes one block-CG iteration must move (S once + 11 passes over [n, C]); GB/s = MB/iter x iters / "
              f"solve s; of copy BW = that / {_describe_bandwidth(result['memory_bandwidth'])}"]
    rows = [_table_row(row) for row in result["rows"]]
    return "\n".join([title, format_table(headers, rows, align="lllrrrrrrrrrrrrrrl"), *legend])


def _describe_bandwidth(bandwidth: dict[str, Any]) -> str:
    if "gbytes_per_second" not in bandwidth:
        return f"the copy bandwidth (unavailable: {bandwidth['unavailable']})"
    return (f"the measured {bandwidth['threads']}-thread copy bandwidth, {bandwidth['gbytes_per_second']:.1f} GB/s "
            f"({bandwidth['op']}, {bandwidth['megabytes']} MB arrays)")


def _table_row(row: dict[str, Any]) -> list[str]:
    if row["status"] != "ok":
        return [row["method"], row["device"], row.get("precision", "-"), *["-"] * 14,
                f"{row['status']} ({row['reason']})"]
    return [row["method"], row["device"], row["precision"],
            *(f"{row[phase]:.3f}" for phase in ("graph_seconds", "normalise_seconds", "solve_seconds",
                                                "total_seconds")),
            optional_number(row["ratio_total"]), optional_number(row["ratio_solve"]),
            optional_number(row.get("speedup_over_scipy_solve"), ".1f"),
            optional_number(row["bytes_per_iteration"] / 1e6 if "bytes_per_iteration" in row else None, ".1f"),
            optional_number(row.get("gbytes_per_second"), ".1f"), optional_number(row.get("fraction_of_bandwidth")),
            str(row["max_iterations"]),
            f"{row['agreement_reference']:.4f}", optional_number(row["agreement_recipe"], ".4f"),
            f"{row['accuracy']:.4f}", ""]
