"""CUDA k-NN against its CPU twin and the float64 oracle (skipped without a GPU)."""
import numpy as np
import pytest
import torch

import clipadapt
from knn_oracle import assert_knn_matches

pytestmark = pytest.mark.gpu

METRICS = ["cosine", "ip", "l2"]
# (dtype, compute mode, relative tolerance of the scores against float64)
PATHS = [("float32", "exact", 2e-5), ("float32", "tf32", 2e-3), ("float16", "exact", 2e-5),
         ("bfloat16", "exact", 2e-5)]
# k = 1, k at the fused limit (128), just above it (large-k path), k = n; tiles of 64 never divide n.
SHAPES = [(1, 1, 1, 1), (70, 1000, 33, 10), (129, 777, 65, 128), (65, 300, 7, 129), (40, 200, 96, 200)]


def fresh(rows, d, dtype, seed, device="cuda"):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, d, generator=generator).to(getattr(torch, dtype)).to(device)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype,compute,rtol", PATHS)
@pytest.mark.parametrize("nq,n,d,k", SHAPES)
def test_cuda_matches_cpu_twin_and_oracle(metric, dtype, compute, rtol, nq, n, d, k):
    seed = int(np.random.SeedSequence().generate_state(1)[0] % 2**31)  # fresh inputs every run
    q, x = fresh(nq, d, dtype, seed), fresh(n, d, dtype, seed + 1)
    torch.cuda.synchronize()
    scores, indices = clipadapt.knn(q, x, k, metric=metric, compute=compute)
    assert scores.device.type == "cuda" and indices.device.type == "cuda"
    cpu_scores, cpu_indices = clipadapt.knn(q.cpu(), x.cpu(), k, metric=metric)
    assert_knn_matches(q.cpu(), x.cpu(), k, metric, scores.cpu(), indices.cpu(), rtol=rtol)
    # Every path re-scores its candidates exactly: the GPU reports the CPU's results bit for bit.
    np.testing.assert_array_equal(indices.cpu().numpy(), cpu_indices.numpy(), err_msg=f"seed {seed}")
    np.testing.assert_array_equal(scores.cpu().numpy(), cpu_scores.numpy(), err_msg=f"seed {seed}")


@pytest.mark.parametrize("k", [1, 16, 128, 200])
def test_cuda_graph_excludes_self_and_breaks_ties_by_index(k):
    base = torch.randint(0, 2, (150, 6)).float() * 2 - 1  # +-1: exact dots, equal norms
    x = torch.cat([base, base]).cuda()
    graph = clipadapt.knn_graph(x, k, metric="cosine")
    cpu = clipadapt.knn_graph(x.cpu(), k, metric="cosine")
    np.testing.assert_array_equal(graph.indices.cpu().numpy(), cpu.indices.numpy())
    np.testing.assert_array_equal(graph.scores.cpu().numpy(), cpu.scores.numpy())


def test_outputs_are_fully_written_over_poisoned_memory():
    # Fill the caching allocator's blocks with NaN so stale memory would show.
    poison = torch.full((1 << 22,), float("nan"), device="cuda")
    del poison
    x = fresh(333, 40, "float16", 3)
    scores, indices = clipadapt.knn(x, x, 17)
    assert torch.isfinite(scores).all() and (indices >= 0).all() and (indices < 333).all()


def test_runs_on_the_callers_stream():
    x = fresh(2000, 64, "bfloat16", 4)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        scores, indices = clipadapt.knn(x, x, 8)
    stream.synchronize()
    want = clipadapt.knn(x.cpu(), x.cpu(), 8)[1]
    np.testing.assert_array_equal(indices.cpu().numpy(), want.numpy())


def test_cupy_in_cupy_out():
    cupy = pytest.importorskip("cupy")
    x = cupy.random.standard_normal((500, 24), dtype=cupy.float32)
    scores, indices = clipadapt.knn(x, x, 5, metric="l2")
    assert isinstance(scores, cupy.ndarray) and isinstance(indices, cupy.ndarray)
    assert_knn_matches(cupy.asnumpy(x), cupy.asnumpy(x), 5, "l2", cupy.asnumpy(scores), cupy.asnumpy(indices))


def test_cuda_nan_is_reported():
    x = fresh(100, 8, "float32", 5)
    x[4, 4] = float("inf")
    with pytest.raises(ValueError, match="queries: contains NaN or Inf"):
        clipadapt.knn_graph(x, 3)


def test_crowded_band_of_copies_widens_the_lists():
    base = fresh(300, 48, "float32", 6, device="cpu")
    x = torch.cat([base, base[:1].repeat(200, 1)])[torch.randperm(500, generator=torch.Generator().manual_seed(0))]
    q = base[:3] + 1e-4
    for k in (5, 130):  # fused and slab paths
        scores, indices = clipadapt.knn(q.cuda(), x.cuda(), k)
        cpu_scores, cpu_indices = clipadapt.knn(q, x, k)
        np.testing.assert_array_equal(indices.cpu().numpy(), cpu_indices.numpy())
        np.testing.assert_array_equal(scores.cpu().numpy(), cpu_scores.numpy())


def test_unchecked_nonfinite_rows_never_enter():
    x = fresh(64, 16, "float32", 7)
    x[3, 1], x[9, 0] = float("nan"), float("inf")
    for metric in METRICS:
        scores, indices = clipadapt.knn(x, x, 4, metric=metric, check_finite=False)
        cpu_scores, cpu_indices = clipadapt.knn(x.cpu(), x.cpu(), 4, metric=metric, check_finite=False)
        np.testing.assert_array_equal(indices.cpu().numpy(), cpu_indices.numpy())
        assert not ((indices == 3) | (indices == 9)).any()


def test_device_mismatch_raises():
    with pytest.raises(ValueError, match="queries is on cuda:0 but database is on cpu"):
        clipadapt.knn(fresh(10, 4, "float32", 1), fresh(10, 4, "float32", 2, device="cpu"), 2)
