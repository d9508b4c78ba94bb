"""ReCLIP pseudo-labelling benchmark: the step every ReCLIP epoch runs (projection + graph +
propagation), clipadapt's :func:`~clipadapt.reclip.propagate_pseudo_labels`
against a dense re-implementation of the released recipe.

The nodes are ReCLIP's: M = C + N, first the C text nodes (the noise-free class directions of
:func:`synthetic_clip`, class c at row c), then N image nodes of :func:`synthetic_clip` around the
same directions (:func:`clipadapt.bench.lp.lp_problem`), in float16 as CLIP emits them. Both
methods get the projection P from :func:`~clipadapt.reclip.text_projection` with
``cut_dim_for(C)`` (the released ``update_projection``). Each method runs in a fresh process
(``spawn``), so its peak memory is its own.
"""
from __future__ import annotations

import functools
import inspect
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipadapt.bench.common import (format_table, log, MethodUnavailable, optional_number, publish_result,
                                    require_clipadapt_on, synchronizer)
from clipadapt.bench.data import synthetic_clip
from clipadapt.bench.lp import ALPHA, DEFAULT_NOISE, K, MAX_ITER, TOL, lp_problem, numpy_blas_threads
from clipadapt.device import set_num_threads

if TYPE_CHECKING:
    from clipadapt.reclip import PseudoLabels

METHODS = ("clipadapt", "dense-recipe")
DEVICES = ("cpu", "cuda")
PHASES = ("projection", "graph", "propagation")
DEFAULT_M, DEFAULT_CLASSES, DEFAULT_D = 2000, 50, 768
# The modality gap of the image nodes: synthetic_clip's default, which lp_problem keeps.
IMAGE_GAP = inspect.signature(synthetic_clip).parameters["gap"].default
# Dense M x M float32 matrices (a float64 one counts twice) the recipe holds at its peak, when it
# builds the CG operator eye(M) - alpha S: A, topA, W, D and S (alive until the step ends, as in
# the released function), alpha S, and the float64 eye(M).todense() and operator. Without the
# cubic degree D is a vector. Measured peaks: see benchmarks/README.md.
_DENSE_MATRICES_AT_PEAK = {True: 10, False: 9}
# Text and image nodes of the small problem each process solves once before it is measured.
_WARMUP_CLASSES, _WARMUP_IMAGES = 10, 500
_BYTES_PER_MB = 2**20
_CUBIC_DEGREE = "W @ ones(M, M), its diagonal, S = D @ (W @ D) with dense D (three O(M^3) matmuls), as released"
_ROW_SUM_DEGREE = "row sums of W, S by broadcasting (--no-cubic-degree)"


@dataclass(frozen=True)
class StepResult:
    """One pseudo-labelling step: its ``outputs`` (the pseudo labels of the image nodes, their
    confidence, the class centroids and the argmax of every node) and the wall-clock ``seconds``
    of each of :data:`PHASES`."""

    outputs: PseudoLabels
    seconds: dict[str, float]


class PhaseClock:
    """Wall-clock seconds of consecutive phases: :meth:`end_phase` closes the phase that began at
    the previous call (or when the clock was made), after ``synchronize()``."""

    def __init__(self, synchronize: Callable[[], None]) -> None:
        self._synchronize = synchronize
        self.seconds: dict[str, float] = {}
        synchronize()
        self._last = time.perf_counter()

    def end_phase(self, phase: str) -> None:
        """Record the seconds since the previous phase ended as ``phase``'s."""
        self._synchronize()
        now = time.perf_counter()
        self.seconds[phase] = now - self._last
        self._last = now


def pseudo_label_step(method: str, *, device: str = "cpu", cubic_degree: bool = True
                      ) -> Callable[[Any, Any], StepResult]:
    """The timed step of ``method`` (one of :data:`METHODS`): ``(text [C, d], images [N, d])``,
    float16 torch tensors on ``device``, to a :class:`StepResult`."""
    synchronize = synchronizer(device)
    if method == "clipadapt":
        return functools.partial(clipadapt_step, synchronize=synchronize)
    if method == "dense-recipe":
        return functools.partial(dense_recipe_step, cubic_degree=cubic_degree, synchronize=synchronize)
    raise ValueError(f"method: unknown method {method!r}; use one of {', '.join(METHODS)}")


def clipadapt_step(text: Any, images: Any, *, synchronize: Callable[[], None]) -> StepResult:
    """:func:`~clipadapt.reclip.propagate_pseudo_labels`'s steps (float64 solve, centroids as the
    V branch asks), timed one by one: P and the projected nodes, the k-NN graph and its
    normalised affinity S, the propagation over S."""
    from clipadapt import affinity, knn_graph
    from clipadapt.reclip.projection import cut_dim_for, text_projection
    from clipadapt.reclip.pseudo_labels import pseudo_label_nodes, pseudo_labels_from_graph

    clock = PhaseClock(synchronize)
    nodes = pseudo_label_nodes(text, images, text_projection(text, cut_dim_for(text.shape[0])))
    clock.end_phase("projection")
    matrix = affinity(knn_graph(nodes, K, metric="cosine"), dtype="float64")
    clock.end_phase("graph")
    result = pseudo_labels_from_graph(matrix, text, images, alpha=ALPHA, max_iter=MAX_ITER, tol=TOL, dtype="float64",
                                      with_centroids=True)
    clock.end_phase("propagation")
    return StepResult(result, clock.seconds)


@dataclass(frozen=True)
class DenseGraph:
    """The dense M x M float32 matrices of the released recipe, on the CPU: ``affinity`` A with
    a zero diagonal, ``top_k`` (topA), ``symmetric`` W, ``degree_scaling`` D^-1/2 (dense diagonal
    matrix, or a vector without the cubic degree) and ``normalised`` S. The step keeps them all
    until it ends, as the released function does, so its peak memory is the released one."""

    affinity: Any
    top_k: Any
    symmetric: Any
    degree_scaling: Any
    normalised: Any


def dense_recipe_step(text: Any, images: Any, *, cubic_degree: bool = True,
                      synchronize: Callable[[], None]) -> StepResult:
    """The released ``perform_label_propagation(cluster_centriod=True)``:
    fp16 projection on the nodes' device, then everything dense on the CPU; ``cubic_degree``
    forms the degrees as W @ ones(M, M) and S as D @ (W @ D), as released, else by row sums and
    broadcasting."""
    from clipadapt.reclip import cut_dim_for, text_projection

    clock = PhaseClock(synchronize)
    projection = text_projection(text, cut_dim_for(text.shape[0]))
    projected, original = recipe_projection(text, images, projection)
    clock.end_phase("projection")
    graph = recipe_graph(projected, cubic_degree=cubic_degree)
    clock.end_phase("graph")
    outputs = recipe_propagation(graph.normalised, original, classes=text.shape[0])
    clock.end_phase("propagation")
    return StepResult(outputs, clock.seconds)


def recipe_projection(text: Any, images: Any, projection: Any) -> tuple[Any, Any]:
    """[text; images] in float16 @ P (float16 [d, d]), row-normalised in float16, as float32 on the CPU;
    and the unprojected nodes as float32 on the CPU (for the centroids)."""
    import torch

    points = torch.cat([text, images]).half()
    original = points.cpu().float()
    projected = torch.nn.functional.normalize(points @ projection, p=2, dim=-1).cpu().float()
    return projected, original


def recipe_graph(points: Any, *, cubic_degree: bool = True) -> DenseGraph:
    """A = (X X^T + 1) / 2 without its diagonal, the top-k of each row (``torch.topk``) in a
    dense topA, W = (topA + topA^T) / 2 and S = D^-1/2 W D^-1/2, all dense float32."""
    import torch

    nodes = points.shape[0]
    affinity = (points @ points.t() + 1) / 2
    affinity = affinity * (1 - torch.eye(nodes))
    values, neighbours = torch.topk(affinity, K, dim=1)
    top_k = torch.zeros_like(affinity).scatter_(1, neighbours, values)
    symmetric = (top_k + top_k.t()) / 2
    if cubic_degree:
        scaling = torch.diag(torch.diag((symmetric @ torch.ones(nodes, nodes)) ** (-0.5)))
        normalised = scaling @ (symmetric @ scaling)
    else:
        scaling = symmetric.sum(dim=1) ** (-0.5)
        normalised = scaling[:, None] * symmetric * scaling[None, :]
    return DenseGraph(affinity, top_k, symmetric, scaling, normalised)


def recipe_propagation(normalised: Any, original: Any, *, classes: int) -> PseudoLabels:
    """``scipy.sparse.linalg.cg`` on the dense float64 ``eye(M) - alpha S``, one class at a time
    (maxiter 20, rtol 1e-6, from 0), then the argmax of every node, the entropy confidence and the
    class centroids of the unprojected nodes (text nodes first in ``original``)."""
    import scipy.sparse
    import scipy.sparse.linalg
    import torch

    from clipadapt.reclip import PseudoLabels

    nodes = normalised.shape[0]
    operator = scipy.sparse.eye(nodes) - ALPHA * normalised.numpy()
    seeds = np.zeros((classes, nodes))
    seeds[np.arange(classes), np.arange(classes)] = 1.0
    columns = [scipy.sparse.linalg.cg(operator, seed, rtol=TOL, maxiter=MAX_ITER)[0].reshape(-1, 1)
               for seed in seeds]
    scores = np.concatenate(columns, axis=1)
    prediction = torch.from_numpy(np.argmax(scores, axis=1))
    confidence = torch.from_numpy(recipe_confidence(scores))
    return PseudoLabels(labels=prediction[classes:], confidence=confidence[classes:],
                        centroids=recipe_centroids(original, prediction, classes), node_labels=prediction)


def recipe_confidence(scores: np.ndarray) -> np.ndarray:
    """1 - H(p) / log C with p the rows of F scaled to sum 1, as released (NaN where p <= 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = (scores.T / scores.sum(axis=1)).T
        entropy = -normalised * np.log(normalised)
    return 1 - entropy.sum(axis=1) / np.log(scores.shape[1])


def recipe_centroids(original: Any, prediction: Any, classes: int) -> Any:
    """Per class, the L2-normalised mean of the unprojected nodes (text nodes included) whose
    argmax is that class, one class at a time, stored as float16 (NaN for a class nobody is
    predicted as)."""
    import torch

    centroids = torch.empty((classes, original.shape[1]), dtype=torch.float16)
    for label in range(classes):
        centroids[label] = torch.nn.functional.normalize(original[prediction == label].mean(dim=0), p=2, dim=0)
    return centroids


def recipe_memory_bytes(m: int, classes: int, d: int, *, cubic_degree: bool = True) -> int:
    """Estimated peak memory of the dense recipe on M = ``m`` nodes: its dense M x M matrices
    (:data:`_DENSE_MATRICES_AT_PEAK`), Y and F (C x M and M x C float64, F twice while it is
    assembled) and the nodes (float16 in, float32 projected and original)."""
    return 4 * m * m * _DENSE_MATRICES_AT_PEAK[cubic_degree] + 3 * 8 * m * classes + (2 + 4 + 4) * m * d


def available_memory_bytes() -> int | None:
    """MemAvailable of /proc/meminfo in bytes, or None where it cannot be read."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    available = [line.split()[1] for line in lines if line.startswith("MemAvailable:")]
    return int(available[0]) * 1024 if available else None


@dataclass(frozen=True)
class ChildSettings:
    """What a method's process needs besides the nodes."""

    classes: int
    threads: int
    device: str
    cubic_degree: bool


def measure_in_fresh_process(method: str, nodes_path: str | Path, settings: ChildSettings) -> dict[str, Any]:
    """Run :func:`_measure_here` for ``method`` in a new ``spawn`` process and return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure_here, method, str(nodes_path), settings).result()


def _measure_here(method: str, nodes_path: str, settings: ChildSettings) -> dict[str, Any]:
    """In the method's own process: set the threads, warm up on a small slice of the nodes, take
    the baseline peak RSS, load the nodes and time the step. Returns the image labels, the
    phase seconds and the peak memory above the baseline (host, and CUDA through torch)."""
    import torch

    torch.set_num_threads(settings.threads)
    set_num_threads(settings.threads)
    step = pseudo_label_step(method, device=settings.device, cubic_degree=settings.cubic_degree)
    with numpy_blas_threads(settings.threads):
        step(*_load_nodes(nodes_path, settings, warmup=True))
        baseline = _peak_rss_bytes()
        if settings.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        result = step(*_load_nodes(nodes_path, settings))
        peak = _peak_rss_bytes() - baseline
    cuda_peak_mb = torch.cuda.max_memory_allocated() / _BYTES_PER_MB if settings.device == "cuda" else None
    return {"labels": result.outputs.labels.cpu().numpy(), "seconds": result.seconds,
            "peak_rss_mb": peak / _BYTES_PER_MB, "peak_cuda_mb": cuda_peak_mb}


def _load_nodes(nodes_path: str, settings: ChildSettings, *, warmup: bool = False) -> tuple[Any, Any]:
    """The text and image nodes of the ``.npy`` file as float16 torch tensors on the device; with
    ``warmup``, only the first few of each (read through a memory map)."""
    import torch

    nodes = np.load(nodes_path, mmap_mode="r" if warmup else None)
    classes = settings.classes
    text, images = nodes[:classes], nodes[classes:]
    if warmup:
        text, images = np.array(text[:_WARMUP_CLASSES]), np.array(images[:_WARMUP_IMAGES])
    return tuple(torch.from_numpy(part).to(settings.device) for part in (text, images))


def _peak_rss_bytes() -> int:
    """This process's own peak resident set size: VmHWM of /proc/self/status on Linux.

    Not ``ru_maxrss`` there: a spawned process's starts at its parent's peak (fork copies the
    high-water mark and exec keeps it), so behind a larger parent it hides the step. Elsewhere
    ``ru_maxrss`` (bytes on macOS, KiB on other systems)."""
    try:
        status = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


def run_reclip_lp_benchmark(m: int, classes: int, d: int = DEFAULT_D, *, noise: float = DEFAULT_NOISE,
                            threads: int = 2, seed: int = 0, device: str = "cpu", cubic_degree: bool = True,
                            json_path: str | Path | None = None) -> dict[str, Any]:
    """Time ReCLIP's pseudo-labelling step with clipadapt and with the dense recipe, each in its
    own process, compare their labels, print a table and return (and write) the results.

    Args:
        m: nodes M = C text + N image nodes (> C + k).
        classes: C (>= 2), one text node each.
        d: embedding dimension.
        noise: noise of the synthetic image nodes (:data:`clipadapt.bench.lp.DEFAULT_NOISE`).
        threads: CPU threads of torch, clipadapt and the BLAS of numpy/scipy.
        seed: seeds the data.
        device: where the nodes live: clipadapt runs there; the recipe projects there and does
            the rest on the CPU, as released.
        cubic_degree: the recipe's degrees by W @ ones(M, M) and S = D @ (W @ D), as released;
            False uses row sums and broadcasting (no O(M^3) matmul).
        json_path: where to write the result as JSON, if anywhere.

    Returns:
        ``{"benchmark", "date", "command", "parameters", "machine", "recipe_memory", "rows"}``;
        each row has ``method, device, status`` (``ok``, ``skipped`` or ``failed``) and
        ``reason``, or ``seconds`` (per phase), ``total_seconds``, ``projection_share`` (of the
        total), ``peak_rss_mb``,
        ``peak_cuda_mb``, ``this_over_clipadapt`` (total seconds), ``agreement_recipe`` and
        ``accuracy`` (on the image nodes).
    """
    _check_parameters(m, classes, d, device)
    settings = ChildSettings(classes=classes, threads=threads, device=device, cubic_degree=cubic_degree)
    recipe_memory = {"estimate_bytes": recipe_memory_bytes(m, classes, d, cubic_degree=cubic_degree),
                     "available_bytes": available_memory_bytes()}
    with tempfile.TemporaryDirectory(prefix="clipadapt-reclip-lp-") as folder:
        nodes_path = Path(folder) / "nodes.npy"
        image_classes = _write_nodes(nodes_path, m, classes, d, noise=noise, seed=seed)
        measured = [_measure(method, nodes_path, settings, recipe_memory) for method in METHODS]
    rows = [row for row, _ in measured]
    _add_comparisons(rows, {row["method"]: labels for row, labels in measured if labels is not None},
                     image_classes)
    return publish_result("reclip-lp", _parameters(m, classes, d, noise, settings, seed), threads,
                          {"recipe_memory": recipe_memory, "rows": rows}, format_reclip_lp_table, json_path)


def _check_parameters(m: int, classes: int, d: int, device: str) -> None:
    if device not in DEVICES:
        raise ValueError(f"device: unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if classes < 2 or d < 1:
        raise ValueError(f"classes must be >= 2 (the projection drops one direction) and d >= 1, got {classes} "
                         f"and {d}")
    if m <= classes + K:
        raise ValueError(f"m: need more than classes + k = {classes + K} nodes, got m={m}")


def _parameters(m: int, classes: int, d: int, noise: float, settings: ChildSettings, seed: int) -> dict[str, Any]:
    from clipadapt.reclip import cut_dim_for

    return {"m": m, "classes": classes, "images": m - classes, "d": d, "cut_dim": cut_dim_for(classes), "k": K,
            "alpha": ALPHA, "max_iter": MAX_ITER, "tol": TOL, "threads": settings.threads, "seed": seed,
            "device": settings.device, "cubic_degree": settings.cubic_degree,
            "data": {"generator": "clipadapt.bench.lp.lp_problem(m, classes, d, noise=noise, seed=seed)",
                     "text_nodes": "the C class directions of synthetic_clip (noise 0, no modality offset), "
                                   "class c at row c",
                     "image_nodes": "synthetic_clip(m - classes, d, n_classes=classes, noise=noise, gap=gap, "
                                    "seed=seed)",
                     "noise": noise, "gap": IMAGE_GAP, "seed": seed, "dtype": "float16"},
            "projection": "clipadapt.reclip.text_projection(text nodes, cut_dim_for(C)), float16, for both methods",
            "degree": (_CUBIC_DEGREE if settings.cubic_degree else _ROW_SUM_DEGREE),
            "peak_memory": "VmHWM of /proc/self/status in the method's own spawned process after the step minus "
                           "after its imports and warm-up (ru_maxrss of a spawned process starts at its parent's "
                           "peak)",
            "recipe_leaves_out": "the unused argsort of cg_diffusion, the no-op sort by confidence before the "
                                 "centroid means, the pseudo-label dictionaries and the accuracy log"}


def _write_nodes(path: Path, m: int, classes: int, d: int, *, noise: float, seed: int) -> np.ndarray:
    """Write the M nodes as float16 ``.npy`` (what each method's process loads); return the
    synthetic class of every image node."""
    log(f"reclip-lp: generating {classes} text + {m - classes} image nodes, d={d}, noise={noise}, seed={seed}")
    problem = lp_problem(m, classes, d, noise=noise, seed=seed)
    np.save(path, problem.features.astype(np.float16))
    return problem.truth[problem.unlabelled]


def _measure(method: str, nodes_path: Path, settings: ChildSettings,
             recipe_memory: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray | None]:
    """One table row and the method's image labels: measured in a fresh process, or why not."""
    row = {"method": method, "device": settings.device}
    try:
        require_clipadapt_on(settings.device)
        if method == "dense-recipe":
            _require_memory(recipe_memory)
    except MethodUnavailable as why:
        log(f"reclip-lp: {method} skipped: {why}")
        return {**row, "status": "skipped", "reason": str(why)}, None
    log(f"reclip-lp: {method} on {settings.device}: in a fresh process, warm-up, then the step")
    try:
        measured = measure_in_fresh_process(method, nodes_path, settings)
    except (RuntimeError, MemoryError) as error:
        log(f"reclip-lp: {method} failed: {error}")
        return {**row, "status": "failed", "reason": f"{type(error).__name__}: {error}"}, None
    seconds = measured["seconds"]
    total = sum(seconds[phase] for phase in PHASES)
    projection_share = seconds["projection"] / total
    log(f"reclip-lp: {method}: " + ", ".join(f"{phase} {seconds[phase]:.3f} s" for phase in PHASES)
        + f" (projection {projection_share:.0%} of the step), peak {measured['peak_rss_mb']:.0f} MB")
    return ({**row, "status": "ok", "seconds": seconds, "total_seconds": total, "projection_share": projection_share,
             "peak_rss_mb": measured["peak_rss_mb"], "peak_cuda_mb": measured["peak_cuda_mb"]}, measured["labels"])


def _require_memory(recipe_memory: dict[str, Any]) -> None:
    """Raises :class:`MethodUnavailable` when the dense recipe's estimate exceeds the available memory."""
    estimate, available = recipe_memory["estimate_bytes"], recipe_memory["available_bytes"]
    if available is not None and estimate > available:
        raise MethodUnavailable(f"needs about {estimate / 1e9:.1f} GB (dense M x M matrices), "
                                f"{available / 1e9:.1f} GB available (MemAvailable, /proc/meminfo)")


def _add_comparisons(rows: list[dict[str, Any]], labels: dict[str, np.ndarray], image_classes: np.ndarray) -> None:
    """Fill in, per measured row: its total over clipadapt's, and the fractions of the image nodes
    whose pseudo label equals the dense recipe's and the synthetic class."""
    recipe = labels.get("dense-recipe")
    ours = next((row for row in rows if row["method"] == "clipadapt" and row["status"] == "ok"), None)
    for row in (row for row in rows if row["status"] == "ok"):
        mine = labels[row["method"]]
        row["this_over_clipadapt"] = row["total_seconds"] / ours["total_seconds"] if ours else None
        row["agreement_recipe"] = float(np.mean(mine == recipe)) if recipe is not None else None
        row["accuracy"] = float(np.mean(mine == image_classes))


def format_reclip_lp_table(result: dict[str, Any]) -> str:
    """The side-by-side table of a :func:`run_reclip_lp_benchmark` result, with a legend."""
    p, data, memory = result["parameters"], result["parameters"]["data"], result["recipe_memory"]
    headers = ["method", "device", "projection s", "graph s", "propagation s", "total s", "projection share",
               "this/ours", "peak MB", "=recipe", "accuracy", "note"]
    title = (f"ReCLIP pseudo labels: M={p['m']} nodes ({p['classes']} text + {p['images']} image), "
             f"C={p['classes']}, d={p['d']}, cut_dim={p['cut_dim']}, k={p['k']}, alpha={p['alpha']}, "
             f"CG {p['max_iter']} iterations (rtol {p['tol']:g}), float16 nodes (noise {data['noise']}, "
             f"gap {data['gap']}), {p['threads']} threads, {p['device']}, seed {p['seed']}")
    available = memory["available_bytes"]
    legend = ["projection = P from the text nodes (SVD) + [text; images] fp16 @ P (clipadapt: exact_matmul; the "
              "recipe: torch's fp16 matmul, as released) + row normalisation in fp16; graph = "
              "k-NN affinities, degrees and S; propagation = CG for every class + argmax, confidence and "
              "centroids; total = their sum; projection share = projection / total",
              "this/ours = this method's total / clipadapt's (how many times longer than clipadapt)",
              "peak MB = peak RSS (VmHWM; ru_maxrss would start at the parent's peak) of the method's own spawned "
              "process after the step minus after its imports and a small warm-up; it includes the float16 nodes "
              f"it loads ({p['m'] * p['d'] * 2 / _BYTES_PER_MB:.0f} MB)",
              "=recipe, accuracy = fraction of the image nodes whose pseudo label equals the dense recipe's, "
              "the synthetic class",
              f"dense recipe degrees: {p['degree']}",
              f"dense recipe memory estimate {memory['estimate_bytes'] / 1e9:.1f} GB, available "
              + ("unknown" if available is None else f"{available / 1e9:.1f} GB (MemAvailable)")]
    rows = [_table_row(row) for row in result["rows"]]
    return "\n".join([title, format_table(headers, rows, align="llrrrrrrrrrl"), *legend])


def _table_row(row: dict[str, Any]) -> list[str]:
    if row["status"] != "ok":
        return [row["method"], row["device"], *["-"] * 9, f"{row['status']} ({row['reason']})"]
    note = "" if row["peak_cuda_mb"] is None else f"peak CUDA {row['peak_cuda_mb']:.0f} MB"
    return [row["method"], row["device"], *(f"{row['seconds'][phase]:.3f}" for phase in PHASES),
            f"{row['total_seconds']:.3f}", f"{row['projection_share']:.0%}", optional_number(row["this_over_clipadapt"]),
            f"{row['peak_rss_mb']:.0f}", optional_number(row["agreement_recipe"], ".4f"), f"{row['accuracy']:.4f}",
            note]
