"""pytest-benchmark: exact k-NN graph build, clipadapt vs faiss vs torch, at a small size.

Run with ``pytest benchmarks/ --benchmark-only``. Each test times one build and asserts the
graph is correct (recall@k against the float64 oracle), not that it is fast.
"""
from __future__ import annotations

import numpy as np
import pytest

from clipadapt import cuda_available
from clipadapt.bench.data import synthetic_clip
from clipadapt.bench.knn import Method, Skipped, exact_neighbours, host_rows, plan_methods, recall_at_k, warm_up

N, D, K, THREADS = 5000, 256, 10, 2
MIN_EXACT_RECALL = 0.999

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not cuda_available(), reason="no usable CUDA device")])]


@pytest.fixture(scope="module")
def clip_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic CLIP rows, the rows checked (all of them) and their exact neighbours."""
    x, _ = synthetic_clip(N, D, seed=0)
    rows = np.arange(N)
    return x, rows, exact_neighbours(x, rows, K)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", ["clipadapt", "faiss", "torch"])
def test_knn_graph(benchmark, clip_data, family: str, device: str) -> None:
    x, rows, truth = clip_data
    method = _exact_method(family, device)
    warm_up(method, x, K)
    inputs = method.prepare(x)
    method.synchronize()
    indices = benchmark.pedantic(method.run, args=(inputs, K), rounds=1, iterations=1)
    recall = recall_at_k(host_rows(indices, rows), truth)
    benchmark.extra_info.update(method=method.name, device=device, n=N, d=D, k=K, recall_at_k=recall)
    assert recall >= MIN_EXACT_RECALL


def _exact_method(family: str, device: str) -> Method:
    """The family's full-float32 method on ``device``; skips the test when it cannot run here."""
    planned = plan_methods([family], n=N, device=device, dtype="float32", threads=THREADS)
    if isinstance(planned[0], Skipped):
        pytest.skip(f"{family}: {planned[0].reason}")
    assert planned[0].exact
    return planned[0]
