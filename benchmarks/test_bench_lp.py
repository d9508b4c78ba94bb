"""pytest-benchmark: label propagation on a shared k-NN graph (normalise + solve), clipadapt vs
the scipy ReCLIP recipe vs a batched torch CG (and cupy on a GPU), at a small size.

Run with ``pytest benchmarks/ --benchmark-only``. Each test times one normalise + solve and
asserts the argmax labels agree with a dense float64 reference solve, not that it is fast.
"""
from __future__ import annotations

import numpy as np
import pytest

from clipadapt import cuda_available, knn_graph
from clipadapt.bench.common import Skipped
from clipadapt.bench.lp import K, Method, Problem, argmax_labels, lp_problem, plan_methods, reference_labels

N, CLASSES, D, THREADS = 3000, 10, 128, 2
# Every method runs the same 20 CG iterations; the reference is solved exactly, so a few
# near-tied nodes may differ from it but none from the scipy recipe.
MIN_AGREEMENT = 0.99

CPU_METHODS = ("clipadapt-f64", "clipadapt-f32", "scipy-recipe", "torch-cg-f64", "torch-cg-f32")
CUDA_METHODS = ("clipadapt-f64", "clipadapt-f32", "torch-cg-f64", "torch-cg-f32", "cupy-recipe")
_ON_GPU = [pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="no usable CUDA device")]
CASES = [(name, "cpu") for name in CPU_METHODS] + [pytest.param(name, "cuda", marks=_ON_GPU) for name in CUDA_METHODS]


@pytest.fixture(scope="module")
def lp_case() -> tuple[Problem, object, np.ndarray]:
    """The seeded problem, its k-NN graph and the reference labels (dense solve: N <= 8000)."""
    problem = lp_problem(N, CLASSES, D, seed=0)
    graph = knn_graph(problem.features, K)
    reference, _ = reference_labels(graph, problem.seeds)
    return problem, graph, reference


@pytest.mark.parametrize(("name", "device"), CASES)
def test_label_propagation(benchmark, lp_case, name: str, device: str) -> None:
    problem, graph, reference = lp_case
    method = _method(name, device)
    inputs = method.prepare(graph, problem.seeds)
    method.run(*inputs)  # warm-up
    solved = benchmark.pedantic(method.run, args=inputs, rounds=1, iterations=1)
    images = problem.unlabelled
    agreement = float(np.mean(argmax_labels(solved.scores)[images] == reference[images]))
    benchmark.extra_info.update(method=name, device=device, n=N, classes=CLASSES, d=D, k=K,
                                max_iterations=int(solved.iterations.max()), agreement_reference=agreement)
    assert agreement >= MIN_AGREEMENT


def _method(name: str, device: str) -> Method:
    """The method called ``name`` on ``device``; skips the test when it cannot run here."""
    for entry in plan_methods(device, THREADS):
        if isinstance(entry, Method) and (entry.name, entry.device) == (name, device):
            return entry
        if isinstance(entry, Skipped) and entry.device == device and name.startswith(entry.name):
            pytest.skip(f"{name} on {device}: {entry.reason}")
    raise LookupError(f"no method {name} on {device}")
