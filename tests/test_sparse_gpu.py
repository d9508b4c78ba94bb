"""CUDA affinity, SpMM, block CG and label propagation against their CPU twins (skipped without a GPU).

Every test draws fresh inputs from a new seed, printed in each assertion message so that a
failure can be replayed.
"""
import numpy as np
import pytest
import torch

import clipadapt
from clipadapt import CsrMatrix, KnnGraph
from clipadapt import _native
from clipadapt._native import _core

pytestmark = pytest.mark.gpu


def fresh_seed():
    seed = int(np.random.SeedSequence().generate_state(1)[0])
    print(f"seed {seed}")
    return seed


def host(array):
    return array.cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)


def to_cpu(graph):
    return KnnGraph(indices=graph.indices.cpu(), scores=graph.scores.cpu(), n=graph.n, metric=graph.metric)


def csr_to(matrix, device):
    return CsrMatrix(indptr=matrix.indptr.to(device), indices=matrix.indices.to(device),
                     values=matrix.values.to(device), shape=matrix.shape, degrees=matrix.degrees.to(device))


def knn_graph_of_random_features(n, d, k, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator).cuda()
    return clipadapt.knn_graph(x, k, metric="cosine")


def hand_graph(n, k, seed, *, spread, negative_rows=0):
    """A graph with many duplicate edges and self edges: row i's neighbours lie in i +- spread."""
    rng = np.random.default_rng(seed)
    offsets = rng.integers(-spread, spread + 1, size=(n, k))
    indices = (np.arange(n)[:, None] + offsets) % n
    scores = rng.uniform(-1, 1, size=(n, k)).astype(np.float32)
    scores[:negative_rows] = -np.abs(scores[:negative_rows]) - 0.01  # cosine_power weight 0
    return KnnGraph(indices=torch.from_numpy(indices.astype(np.int64)).cuda(), scores=torch.from_numpy(scores).cuda(),
                    n=n, metric="cosine")


def assert_affinity_equal(gpu, cpu, seed, dtype):
    assert gpu.indptr.device.type == "cuda" and gpu.values.device.type == "cuda"
    assert gpu.values.dtype == getattr(torch, dtype), f"seed {seed}"
    np.testing.assert_array_equal(host(gpu.indptr), host(cpu.indptr), err_msg=f"seed {seed}: indptr")
    np.testing.assert_array_equal(host(gpu.indices), host(cpu.indices), err_msg=f"seed {seed}: indices")
    rtol = 1e-12 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(host(gpu.values), host(cpu.values), rtol=rtol, atol=1e-15,
                               err_msg=f"seed {seed}: values")
    np.testing.assert_allclose(host(gpu.degrees), host(cpu.degrees), rtol=1e-12, atol=1e-15,
                               err_msg=f"seed {seed}: degrees")


AFFINITY_SETTINGS = [("shifted_cosine", 1.0), ("shifted_cosine", 2.5), ("cosine_power", 3.0)]


@pytest.mark.parametrize("kernel,gamma", AFFINITY_SETTINGS)
@pytest.mark.parametrize("symmetrize", ["mean", "sum"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_affinity_of_knn_graph_matches_cpu(kernel, gamma, symmetrize, normalize, dtype):
    seed = fresh_seed()
    graph = knn_graph_of_random_features(1500, 16, 10, seed)
    settings = dict(kernel=kernel, gamma=gamma, symmetrize=symmetrize, normalize=normalize, dtype=dtype)
    gpu = clipadapt.affinity(graph, **settings)
    cpu = clipadapt.affinity(to_cpu(graph), **settings)
    assert_affinity_equal(gpu, cpu, seed, dtype)


@pytest.mark.parametrize("kernel,gamma", AFFINITY_SETTINGS)
@pytest.mark.parametrize("symmetrize", ["mean", "sum"])
@pytest.mark.parametrize("n,k,spread", [(1, 1, 0), (2, 3, 1), (300, 16, 2), (5000, 24, 3), (40000, 8, 50)])
def test_affinity_with_duplicate_and_self_edges_matches_cpu(kernel, gamma, symmetrize, n, k, spread):
    seed = fresh_seed()
    graph = hand_graph(n, k, seed, spread=spread)
    settings = dict(kernel=kernel, gamma=gamma, symmetrize=symmetrize)
    gpu = clipadapt.affinity(graph, **settings)
    cpu = clipadapt.affinity(to_cpu(graph), **settings)
    assert_affinity_equal(gpu, cpu, seed, "float64")
    indptr, indices = host(gpu.indptr), host(gpu.indices)
    for row in range(min(n, 200)):
        columns = indices[indptr[row]:indptr[row + 1]]
        assert np.all(np.diff(columns) > 0) and row not in columns, f"seed {seed}: row {row}"


@pytest.mark.parametrize("symmetrize", ["mean", "sum"])
def test_affinity_with_isolated_nodes_matches_cpu(symmetrize):
    seed = fresh_seed()
    # Rows 0-49 have only negative cosines; with spread 3 their neighbours are mostly isolated too.
    graph = hand_graph(400, 6, seed, spread=3, negative_rows=50)
    gpu = clipadapt.affinity(graph, kernel="cosine_power", gamma=3.0, symmetrize=symmetrize)
    cpu = clipadapt.affinity(to_cpu(graph), kernel="cosine_power", gamma=3.0, symmetrize=symmetrize)
    assert_affinity_equal(gpu, cpu, seed, "float64")
    assert (host(gpu.degrees) == 0).any(), f"seed {seed}: expected some isolated nodes"
    assert np.isfinite(host(gpu.values)).all(), f"seed {seed}"


def test_affinity_writes_every_output_over_poisoned_memory():
    seed = fresh_seed()
    poison = torch.full((1 << 22,), float("nan"), device="cuda", dtype=torch.float64)
    del poison
    graph = hand_graph(1000, 7, seed, spread=4)
    gpu = clipadapt.affinity(graph)
    cpu = clipadapt.affinity(to_cpu(graph))
    assert_affinity_equal(gpu, cpu, seed, "float64")


def test_affinity_rejects_out_of_range_neighbours_on_cuda():
    graph = hand_graph(50, 4, 0, spread=2)
    indices = graph.indices.clone()
    indices[7, 2] = -1
    bad = KnnGraph(indices=indices, scores=graph.scores, n=50, metric="cosine")
    with pytest.raises(ValueError, match=r"entries must lie in \[0, n\)"):
        clipadapt.affinity(bad)
    indices[7, 2] = 50
    with pytest.raises(ValueError, match=r"entries must lie in \[0, n\)"):
        clipadapt.affinity(KnnGraph(indices=indices, scores=graph.scores, n=50, metric="cosine"))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("columns", [1, 7, 33, 100])
def test_spmm_matches_cpu_and_dense(dtype, columns):
    seed = fresh_seed()
    graph = hand_graph(2000, 9, seed, spread=40, negative_rows=30)
    s = clipadapt.affinity(graph, kernel="cosine_power", gamma=3.0, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2000, columns, generator=generator, dtype=getattr(torch, dtype)).cuda()
    gpu = clipadapt.spmm(s, x)
    cpu = clipadapt.spmm(csr_to(s, "cpu"), x.cpu())
    assert gpu.device.type == "cuda" and gpu.dtype == x.dtype and tuple(gpu.shape) == (2000, columns)
    dense = s.to_scipy().toarray().astype(np.float64) @ host(x).astype(np.float64)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(host(gpu), host(cpu), rtol=tol, atol=tol, err_msg=f"seed {seed}: vs CPU")
    np.testing.assert_allclose(host(gpu), dense, rtol=tol, atol=tol, err_msg=f"seed {seed}: vs dense")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("columns", [1, 33])
def test_spmm_kernel_with_y_aliasing_out(dtype, columns):
    """out = scale_y * y + scale_ax * (A x) with y and out the same buffer (the contract of spmm_into)."""
    seed = fresh_seed()
    s = clipadapt.affinity(hand_graph(700, 5, seed, spread=30), dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(700, columns, generator=generator, dtype=getattr(torch, dtype)).cuda()
    y = torch.randn(700, columns, generator=generator, dtype=getattr(torch, dtype)).cuda()
    want = 0.5 * host(y).astype(np.float64) - 0.9 * (s.to_scipy().toarray() @ host(x).astype(np.float64))
    out = y.clone()
    stream = int(torch.cuda.current_stream().cuda_stream)
    capsule = _native.capsule
    _core.spmm_into(capsule(s.indptr, stream), capsule(s.indices, stream), capsule(s.values, stream), 700, 700,
                    capsule(x, stream), capsule(out, stream), capsule(out, stream), -0.9, 0.5, stream)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(host(out), want, rtol=tol, atol=tol, err_msg=f"seed {seed}")


def seed_matrix(n, columns, seed, dtype, *, zero_column=False):
    """One-hot seeds for ~5% of the rows, a random class each; optionally one all-zero column."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, columns))
    rows = rng.choice(n, size=max(columns, n // 20), replace=False)
    y[rows, rng.integers(0, columns, size=rows.size)] = 1.0
    if zero_column:
        y[:, -1] = 0.0
    return torch.from_numpy(y.astype(dtype)).cuda()


@pytest.mark.parametrize("columns", [1, 5, 40])
@pytest.mark.parametrize("max_iter,tol", [(20, 1e-6), (200, 1e-10), (0, 1e-6)])
def test_conjugate_gradient_matches_cpu_float64(columns, max_iter, tol):
    seed = fresh_seed()
    graph = knn_graph_of_random_features(3000, 12, 10, seed)
    s = clipadapt.affinity(graph)
    y = seed_matrix(3000, columns, seed, "float64", zero_column=columns > 1)
    gpu = clipadapt.conjugate_gradient(s, y, alpha=0.99, max_iter=max_iter, tol=tol)
    cpu = clipadapt.conjugate_gradient(csr_to(s, "cpu"), y.cpu(), alpha=0.99, max_iter=max_iter, tol=tol)
    assert gpu.solution.device.type == "cuda" and gpu.iterations.device.type == "cuda"
    np.testing.assert_array_equal(host(gpu.iterations), host(cpu.iterations), err_msg=f"seed {seed}: iterations")
    np.testing.assert_allclose(host(gpu.solution), host(cpu.solution), rtol=0, atol=1e-10,
                               err_msg=f"seed {seed}: solution")
    np.testing.assert_allclose(host(gpu.residuals), host(cpu.residuals), rtol=1e-6, atol=1e-14,
                               err_msg=f"seed {seed}: residuals")
    if columns > 1:
        assert host(gpu.iterations)[-1] == 0 and host(gpu.residuals)[-1] == 0.0, f"seed {seed}: zero column"
        assert not host(gpu.solution)[:, -1].any(), f"seed {seed}: zero column"


def test_conjugate_gradient_float32_close_to_cpu():
    seed = fresh_seed()
    graph = knn_graph_of_random_features(3000, 12, 10, seed)
    s = clipadapt.affinity(graph, dtype="float32")
    y = seed_matrix(3000, 6, seed, "float32")
    gpu = clipadapt.conjugate_gradient(s, y, alpha=0.9, max_iter=30, tol=1e-5)
    cpu = clipadapt.conjugate_gradient(csr_to(s, "cpu"), y.cpu(), alpha=0.9, max_iter=30, tol=1e-5)
    scale = float(np.abs(host(cpu.solution)).max())
    np.testing.assert_allclose(host(gpu.solution), host(cpu.solution), rtol=0, atol=1e-4 * scale,
                               err_msg=f"seed {seed}")
    assert np.abs(host(gpu.iterations) - host(cpu.iterations)).max() <= 1, f"seed {seed}"


def clustered(n, d, classes, seed):
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, d, generator=generator) * 4.0
    truth = torch.randint(0, classes, (n,), generator=generator)
    features = centers[truth] + torch.randn(n, d, generator=generator)
    labels = torch.full((n,), -1, dtype=torch.int64)
    for c in range(classes):  # 5 labelled rows per class
        members = torch.nonzero(truth == c).flatten()
        labels[members[:5]] = c
    return features, labels, truth


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_label_propagation_matches_cpu_on_clustered_data(dtype):
    seed = fresh_seed()
    features, labels, truth = clustered(3000, 32, 10, seed)
    gpu = clipadapt.label_propagation(features.cuda(), labels.cuda(), k=15, dtype=dtype)
    cpu = clipadapt.label_propagation(features, labels, k=15, dtype=dtype)
    assert gpu.labels.device.type == "cuda" and gpu.scores.device.type == "cuda"
    np.testing.assert_array_equal(host(gpu.labels), host(cpu.labels), err_msg=f"seed {seed}: labels")
    accuracy = (host(gpu.labels) == truth.numpy()).mean()
    assert accuracy > 0.95, f"seed {seed}: accuracy {accuracy:.4f}"
    np.testing.assert_allclose(host(gpu.confidence), host(cpu.confidence), atol=1e-3, err_msg=f"seed {seed}")


def test_torch_in_torch_out_on_the_callers_stream():
    seed = fresh_seed()
    features, labels, _ = clustered(3000, 32, 6, seed)
    cuda_features, cuda_labels = features.cuda(), labels.cuda()
    y = seed_matrix(3000, 4, seed, "float64")
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        graph = clipadapt.knn_graph(cuda_features, 10, metric="cosine")
        s = clipadapt.affinity(graph)
        product = clipadapt.spmm(s, y)
        solved = clipadapt.conjugate_gradient(s, y, max_iter=50)
        propagated = clipadapt.label_propagation(cuda_features, cuda_labels, k=10)
    stream.synchronize()
    for array in (graph.indices, s.indptr, s.indices, s.values, s.degrees, product, solved.solution,
                  solved.iterations, solved.residuals, propagated.scores, propagated.labels):
        assert isinstance(array, torch.Tensor) and array.device.type == "cuda"
    cpu_s = clipadapt.affinity(to_cpu(graph))
    assert_affinity_equal(s, cpu_s, seed, "float64")
    np.testing.assert_allclose(host(product), host(clipadapt.spmm(cpu_s, y.cpu())), rtol=1e-12, atol=1e-12,
                               err_msg=f"seed {seed}")
    cpu_solved = clipadapt.conjugate_gradient(cpu_s, y.cpu(), max_iter=50)
    np.testing.assert_array_equal(host(solved.iterations), host(cpu_solved.iterations), err_msg=f"seed {seed}")
    np.testing.assert_allclose(host(solved.solution), host(cpu_solved.solution), rtol=0, atol=1e-10,
                               err_msg=f"seed {seed}")
    cpu_propagated = clipadapt.label_propagation(features, labels, k=10)
    np.testing.assert_array_equal(host(propagated.labels), host(cpu_propagated.labels), err_msg=f"seed {seed}")
