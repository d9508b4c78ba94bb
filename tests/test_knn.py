"""knn / knn_graph on the CPU against the float64 oracle (tests/knn_oracle.py)."""
import numpy as np
import pytest
import torch

import clipadapt
from knn_oracle import assert_knn_matches, knn_oracle

METRICS = ["cosine", "ip", "l2"]
DTYPES = ["float32", "float16", "bfloat16"]


def features(rows, d, dtype, seed):
    """Random features as a torch tensor of the dtype (numpy has no bfloat16)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, d, generator=generator).to(getattr(torch, dtype))


# (nq, n, d, k): one row, k = 1, k = n, d odd, sizes that are no multiple of the 512 tile,
# one query against many rows (the database-slicing path), several query tiles.
SHAPES = [(1, 1, 1, 1), (1, 2000, 33, 7), (37, 1100, 65, 10), (513, 700, 3, 1), (1030, 530, 17, 530)]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nq,n,d,k", SHAPES)
def test_knn_matches_float64_oracle(metric, dtype, nq, n, d, k):
    q = features(nq, d, dtype, seed=nq)
    x = features(n, d, dtype, seed=n + 1)
    scores, indices = clipadapt.knn(q, x, k, metric=metric)
    assert_knn_matches(q, x, k, metric, scores, indices)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("n,k", [(2, 1), (40, 39), (600, 599), (1025, 10)])
def test_knn_graph_excludes_self(metric, n, k):
    x = features(n, 9, "float32", seed=n)
    graph = clipadapt.knn_graph(x, k, metric=metric)
    assert graph.n == n and graph.k == k and graph.metric == metric
    assert_knn_matches(x, x, k, metric, graph.scores, graph.indices, exclude_self=True)


def test_exclude_self_drops_index_i_not_merely_the_best_hit():
    # Row 1 duplicates row 0: for query 0 the best hit other than itself is row 1 (score 1).
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    _, indices = clipadapt.knn(x, x, 2, metric="cosine", exclude_self=True)
    assert indices.tolist() == [[1, 2], [0, 2], [0, 1]]


@pytest.mark.parametrize("metric", METRICS)
def test_ties_go_to_the_smaller_index(metric):
    # +-1 features: dot products are exact small integers and every row has the same norm, so
    # equal scores are exact ties under every metric.
    rng = np.random.default_rng(7)
    base = rng.choice([-1.0, 1.0], size=(60, 5)).astype(np.float32)
    x = np.concatenate([base, base, base[::-1]])  # every row appears at least twice
    q = rng.choice([-1.0, 1.0], size=(25, 5)).astype(np.float32)
    scores, indices = clipadapt.knn(q, x, 40, metric=metric)
    want_scores, want_indices, _ = knn_oracle(q, x, 40, metric)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("k", [16, 40, 127])
def test_wide_lists_keep_every_tie_in_index_order(k):
    """Lists of 16 or more filling from a tile of at least 4 k keys first find the k-th
    largest key (a bisection over the keys' bits); with many exactly tied scores the result
    must still be the top k by (score, smaller index)."""
    rng = np.random.default_rng(k)
    x = (rng.integers(-2, 3, size=(700, 9)) / 2).astype(np.float32)  # dot products exact, many equal
    q = x[:64]
    scores, indices = clipadapt.knn(q, x, k, metric="ip")
    exact = q.astype(np.float64) @ x.T.astype(np.float64)
    for row in range(len(q)):
        want = np.lexsort((np.arange(len(x)), -exact[row]))[:k]
        np.testing.assert_array_equal(indices[row], want)
        np.testing.assert_array_equal(scores[row], exact[row][want].astype(np.float32))


def test_results_are_identical_across_thread_counts():
    x = features(3000, 31, "float32", seed=3).numpy()
    before = clipadapt.get_num_threads()
    try:
        clipadapt.set_num_threads(1)
        one = clipadapt.knn_graph(x, 15)
        clipadapt.set_num_threads(2)
        two = clipadapt.knn_graph(x, 15)
    finally:
        clipadapt.set_num_threads(before)
    np.testing.assert_array_equal(one.indices, two.indices)
    np.testing.assert_array_equal(one.scores, two.scores)


def test_zero_rows_have_cosine_zero():
    x = np.eye(4, 3, dtype=np.float32)  # row 3 is all zeros
    scores, indices = clipadapt.knn(x, x, 4, metric="cosine")
    assert np.all(np.isfinite(scores))
    assert scores[3].tolist() == [0.0, 0.0, 0.0, 0.0] and indices[3].tolist() == [0, 1, 2, 3]


def test_large_k_equals_full_sort():
    x = features(900, 12, "float32", seed=11)
    scores, indices = clipadapt.knn(x[:50], x, 900, metric="l2")
    assert_knn_matches(x[:50], x, 900, "l2", scores, indices)


def test_graph_to_csr():
    x = features(200, 8, "float32", seed=5).numpy()
    graph = clipadapt.knn_graph(x, 6)
    csr = graph.to_csr()
    assert csr.shape == (200, 200) and csr.nnz == 200 * 6
    np.testing.assert_array_equal(csr.indices.reshape(200, 6), graph.indices)
    np.testing.assert_allclose(csr.toarray()[0, graph.indices[0]], graph.scores[0])
    dense = graph.to_csr("torch").to_dense()
    np.testing.assert_allclose(dense.numpy(), csr.toarray())


def test_device_summary_reports_no_gpu_without_one():
    summary = clipadapt.device_summary()
    assert summary["cuda_compiled"] in (True, False)
    assert clipadapt.cuda_available() == (summary["cuda_compiled"] and len(summary["cuda_devices"]) > 0)
    assert summary["cpu_threads"] >= 1
