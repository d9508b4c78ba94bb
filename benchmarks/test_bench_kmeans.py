"""pytest-benchmark: spherical k-means, clipadapt vs faiss vs torch (and flash-kmeans on a GPU),
at a small size.

Run with ``pytest benchmarks/ --benchmark-only``. Each test times one run of ITERS iterations
from the shared initial centroids and asserts the objective it reaches is within 2% of faiss's
at the same iterations, not that it is fast.
"""
from __future__ import annotations

import numpy as np
import pytest

from clipadapt import cuda_available, kmeans
from clipadapt.bench.common import Skipped
from clipadapt.bench.data import synthetic_clip
from clipadapt.bench.kmeans import (Method, initial_centroids, plan_methods, run_kmeans_benchmark, spherical_inertia,
                                    warm_up)
from clipadapt._arrays import to_numpy

N, D, CLUSTERS, ITERS, THREADS, SEED = 5000, 128, 64, 10, 2, 0
MAX_RELATIVE_GAP = 0.02

_ON_GPU = [pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="no usable CUDA device")]
CASES = ([(family, "cpu") for family in ("clipadapt", "faiss", "torch")]
         + [pytest.param(family, "cuda", marks=_ON_GPU) for family in ("clipadapt", "faiss", "torch", "flash-kmeans")])


@pytest.fixture(scope="module")
def kmeans_case() -> tuple[np.ndarray, np.ndarray, float]:
    """The rows, the shared initial centroids and the objective faiss (CPU) reaches from them."""
    x, _ = synthetic_clip(N, D, seed=SEED)
    initial = initial_centroids(x, CLUSTERS, SEED)
    faiss_inertia = spherical_inertia(x, _method("faiss", "cpu").train(x, initial, ITERS).centroids)
    return x, initial, faiss_inertia


@pytest.mark.parametrize(("family", "device"), CASES)
def test_kmeans_iterations(benchmark, kmeans_case, family: str, device: str) -> None:
    x, initial, faiss_inertia = kmeans_case
    method = _method(family, device)
    warm_up(method, x, CLUSTERS, SEED)
    inputs = method.prepare(x)
    trained = benchmark.pedantic(method.train, args=(inputs, initial, ITERS), rounds=1, iterations=1)
    inertia = spherical_inertia(x, trained.centroids)
    benchmark.extra_info.update(method=method.name, device=device, n=N, d=D, clusters=CLUSTERS, iters=ITERS,
                                seconds_per_iteration=trained.seconds_per_iteration, inertia=inertia,
                                faiss_inertia=faiss_inertia)
    assert trained.centroids.shape == (CLUSTERS, D)
    assert abs(inertia - faiss_inertia) <= MAX_RELATIVE_GAP * faiss_inertia


def test_shared_objective_matches_clipadapt(benchmark, kmeans_case) -> None:
    """The objective the table reports agrees with the one clipadapt.kmeans reports itself."""
    x, _, _ = kmeans_case
    result = kmeans(x, CLUSTERS, max_iter=ITERS, metric="ip", init="random", seed=SEED)
    inertia = benchmark.pedantic(spherical_inertia, args=(x, to_numpy(result.centroids)), rounds=1, iterations=1)
    assert inertia == pytest.approx(result.inertia[-1], rel=1e-4)


def test_kmeans_benchmark_table(benchmark, capsys) -> None:
    """The whole ``clipadapt bench kmeans`` run: every CPU method runs, and their objectives agree."""
    result = benchmark.pedantic(run_kmeans_benchmark, args=(N, D, CLUSTERS), rounds=1, iterations=1,
                                kwargs={"iters": ITERS, "threads": THREADS, "seed": SEED,
                                        "methods": ["clipadapt", "faiss", "torch"], "device": "cpu"})
    assert "Spherical k-means" in capsys.readouterr().out
    assert [row["status"] for row in result["rows"]] == ["ok"] * 3
    for row in result["rows"]:
        assert row["inertia_over_clipadapt"] == pytest.approx(1.0, abs=MAX_RELATIVE_GAP)
        assert row["seconds_per_iteration"] > 0


def _method(family: str, device: str) -> Method:
    """The family's method on ``device``; skips the test when it cannot run here."""
    (planned,) = plan_methods([family], device=device, threads=THREADS, seed=SEED)
    if isinstance(planned, Skipped):
        pytest.skip(f"{family} on {device}: {planned.reason}")
    return planned
