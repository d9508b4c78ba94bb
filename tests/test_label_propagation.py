"""Affinity, SpMM, block CG and label propagation on the CPU against float64 references."""
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch

import clipadapt
from clipadapt import CsrMatrix, KnnGraph


def random_graph(n, k, seed, *, duplicates=False, self_edges=False):
    """A directed graph with k edges per node and cosines in [-1, 1], as numpy arrays."""
    rng = np.random.default_rng(seed)
    indices = np.stack([rng.choice(n, size=k, replace=duplicates) for _ in range(n)]).astype(np.int64)
    if self_edges:
        indices[::3, 0] = np.arange(0, n, 3)
    scores = rng.uniform(-1, 1, size=(n, k)).astype(np.float32)
    return KnnGraph(indices=indices, scores=scores, n=n, metric="cosine")


def dense_affinity(graph, kernel="shifted_cosine", gamma=1.0, symmetrize="mean", normalize=True):
    """The float64 dense reference: sum duplicate edges, zero diagonal, symmetrise, normalise."""
    cos = graph.scores.astype(np.float64)
    weight = ((1 + cos) / 2) ** gamma if kernel == "shifted_cosine" else np.maximum(cos, 0) ** gamma
    a = np.zeros((graph.n, graph.n))
    np.add.at(a, (np.repeat(np.arange(graph.n), graph.k), graph.indices.ravel()), weight.ravel())
    np.fill_diagonal(a, 0)
    w = (a + a.T) * (0.5 if symmetrize == "mean" else 1.0)
    degree = w.sum(1)
    if not normalize:
        return w, degree
    inv = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    return w * inv[:, None] * inv[None, :], degree


@pytest.mark.parametrize("kernel,gamma", [("shifted_cosine", 1.0), ("shifted_cosine", 2.5), ("cosine_power", 3.0)])
@pytest.mark.parametrize("symmetrize", ["mean", "sum"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("duplicates,self_edges", [(False, False), (True, True)])
def test_affinity_matches_dense_reference(kernel, gamma, symmetrize, normalize, duplicates, self_edges):
    graph = random_graph(97, 6, seed=3, duplicates=duplicates, self_edges=self_edges)
    s = clipadapt.affinity(graph, kernel=kernel, gamma=gamma, symmetrize=symmetrize, normalize=normalize)
    want, degree = dense_affinity(graph, kernel, gamma, symmetrize, normalize)
    np.testing.assert_allclose(s.to_scipy().toarray(), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(s.degrees, degree, rtol=1e-12)
    assert s.nnz <= 2 * graph.n * graph.k
    for row in range(graph.n):
        columns = s.indices[s.indptr[row]:s.indptr[row + 1]]
        assert np.all(np.diff(columns) > 0) and row not in columns


def test_isolated_nodes_get_zero_rows_not_nan():
    graph = random_graph(40, 3, seed=1)
    scores = graph.scores.copy()
    scores[:10] = -0.5  # cosine_power weight 0 for nodes 0-9's edges
    graph = KnnGraph(scores, graph.indices, graph.n, "cosine")
    s = clipadapt.affinity(graph, kernel="cosine_power", gamma=3.0)
    dense = s.to_scipy().toarray()
    assert np.all(np.isfinite(dense))
    want, degree = dense_affinity(graph, "cosine_power", 3.0)
    assert np.any(degree == 0), "the fixture must hold an isolated node"
    np.testing.assert_allclose(dense, want, atol=1e-15)


def test_affinity_in_float32_and_from_torch():
    graph = random_graph(60, 4, seed=2)
    torch_graph = KnnGraph(torch.from_numpy(graph.scores), torch.from_numpy(graph.indices), 60, "cosine")
    s = clipadapt.affinity(torch_graph, dtype="float32")
    assert isinstance(s.values, torch.Tensor) and s.values.dtype == torch.float32
    np.testing.assert_allclose(s.to_scipy().toarray(), dense_affinity(graph)[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(s.to_torch().to_dense().numpy(), s.to_scipy().toarray())


def random_csr(n, m, density, seed, dtype):
    matrix = scipy.sparse.random(n, m, density=density, random_state=seed, format="csr", dtype=np.float64)
    return CsrMatrix.from_scipy(matrix, dtype=dtype), matrix.toarray()


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("columns", [1, 7, 130])
def test_spmm_matches_dense(dtype, rtol, columns):
    s, dense = random_csr(301, 257, 0.05, seed=columns, dtype=dtype)
    x = np.random.default_rng(columns).standard_normal((257, columns)).astype(dtype)
    out = clipadapt.spmm(s, x)
    assert out.dtype == np.dtype(dtype) and out.shape == (301, columns)
    np.testing.assert_allclose(out, dense @ x.astype(np.float64), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("columns", [1, 7, 8, 9, 16, 17, 100, 128, 129, 256, 257])
def test_spmm_sums_each_row_in_entry_order(dtype, columns):
    """Bit for bit the sum of value * row over a row's entries in their stored order, one
    rounding per multiply and per add, whatever the width (rows of a few registers are summed
    in registers, wider ones in memory; the last register may overlap the one before it)."""
    s, _ = random_csr(40, 57, 0.2, seed=columns, dtype=dtype)
    x = np.random.default_rng(columns).standard_normal((57, columns)).astype(dtype)
    want = np.zeros((40, columns), dtype=dtype)
    for i in range(40):
        for e in range(s.indptr[i], s.indptr[i + 1]):
            want[i] = want[i] + s.values[e] * x[s.indices[e]]
    np.testing.assert_array_equal(clipadapt.spmm(s, x), want)


def test_spmm_with_empty_rows_and_torch_arrays():
    s, dense = random_csr(50, 50, 0.02, seed=9, dtype="float64")
    assert np.any(np.diff(s.indptr) == 0)
    torch_s = CsrMatrix(*(torch.from_numpy(a) for a in (s.indptr, s.indices, s.values)), shape=s.shape)
    out = clipadapt.spmm(torch_s, torch.ones(50, 3, dtype=torch.float64))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), dense @ np.ones((50, 3)))


def graph_operator(n=400, k=8, seed=4):
    x = np.random.default_rng(seed).standard_normal((n, 12)).astype(np.float32)
    s = clipadapt.affinity(clipadapt.knn_graph(x, k))
    return s, s.to_scipy()


def scipy_cg_columns(s_scipy, y, alpha, max_iter, tol):
    operator = scipy.sparse.eye(s_scipy.shape[0]) - alpha * s_scipy
    solutions, iterations = [], []
    for column in y.T:
        count = [0]
        solution, _ = scipy.sparse.linalg.cg(operator, column, rtol=tol, maxiter=max_iter,
                                             callback=lambda _: count.__setitem__(0, count[0] + 1))
        solutions.append(solution)
        iterations.append(count[0])
    return np.stack(solutions, 1), np.array(iterations)


@pytest.mark.parametrize("max_iter,tol", [(20, 1e-6), (200, 1e-9), (5, 0.0)])
def test_block_cg_equals_scipy_cg_column_by_column(max_iter, tol):
    s, s_scipy = graph_operator()
    rng = np.random.default_rng(0)
    y = np.zeros((400, 6))
    y[rng.choice(400, 6, replace=False), np.arange(6)] = 1.0
    y[:, 4] = rng.standard_normal(400)  # a dense right-hand side
    y[:, 5] = 0.0                       # an all-zero column: solution 0, no iteration
    result = clipadapt.conjugate_gradient(s, y, alpha=0.9, max_iter=max_iter, tol=tol)
    want, want_iterations = scipy_cg_columns(s_scipy, y, 0.9, max_iter, tol)
    np.testing.assert_allclose(result.solution, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(result.iterations, want_iterations)
    assert result.iterations[5] == 0 and result.residuals[5] == 0
    operator = np.eye(400) - 0.9 * s_scipy.toarray()
    for c in range(5):
        true = np.linalg.norm(y[:, c] - operator @ result.solution[:, c]) / np.linalg.norm(y[:, c])
        assert abs(true - result.residuals[c]) <= 1e-8 + 1e-6 * true
        assert result.iterations[c] == max_iter or result.residuals[c] <= tol


def test_block_cg_float32_close_to_float64():
    s, _ = graph_operator()
    s32 = CsrMatrix(s.indptr, s.indices, s.values.astype(np.float32), s.shape)
    y = np.eye(400, 3)
    f64 = clipadapt.conjugate_gradient(s, y).solution
    f32 = clipadapt.conjugate_gradient(s32, y.astype(np.float32)).solution
    np.testing.assert_allclose(f32, f64, rtol=1e-3, atol=1e-4)


def reclip_dense_recipe(text, images, k=20, alpha=0.99):
    """The released ReCLIP label propagation , dense and float64, written again from the released code."""
    x = np.concatenate([text, images]).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    a = (x @ x.T + 1) / 2
    np.fill_diagonal(a, 0)
    a_k = np.zeros_like(a)
    top = np.argsort(-a, axis=1, kind="stable")[:, :k]
    np.put_along_axis(a_k, top, np.take_along_axis(a, top, 1), 1)
    w = (a_k + a_k.T) / 2
    d = w.sum(1)
    s = w / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    classes = text.shape[0]
    y = np.zeros((x.shape[0], classes))
    y[np.arange(classes), np.arange(classes)] = 1
    operator = np.eye(x.shape[0]) - alpha * s
    f = np.stack([scipy.sparse.linalg.cg(operator, y[:, c], rtol=1e-6, maxiter=20)[0] for c in range(classes)], 1)
    return f.argmax(1)


def test_label_propagation_reproduces_the_reclip_recipe():
    from clipadapt.bench.data import synthetic_clip

    classes = 12
    # One text node per class (its direction), as ReCLIP seeds class c at text node c.
    candidates, candidate_classes = synthetic_clip(400, 64, n_classes=classes, modality="text", noise=0.0, seed=5)
    text = candidates[np.unique(candidate_classes, return_index=True)[1]]
    images, truth = synthetic_clip(1500, 64, n_classes=classes, modality="image", noise=1.5, seed=5)
    labels = np.concatenate([np.arange(classes), -np.ones(1500, dtype=np.int64)])
    ours = clipadapt.label_propagation(np.concatenate([text, images]), labels, k=20, alpha=0.99)
    want = reclip_dense_recipe(text, images)
    agreement = np.mean(ours.labels == want)
    assert agreement >= 0.999, f"only {agreement:.4f} of pseudo labels agree with the dense recipe"
    assert np.mean(ours.labels[classes:] == truth) > 0.5  # the task is solvable, not trivial
    assert np.all(ours.iterations == 20)  # as in the released code, alpha=0.99 never converges to 1e-6


def test_label_propagation_result_fields():
    x = np.random.default_rng(1).standard_normal((300, 8)).astype(np.float32)
    labels = -np.ones(300, dtype=np.int64)
    labels[:3] = [0, 1, 2]
    result = clipadapt.label_propagation(torch.from_numpy(x), torch.from_numpy(labels), k=10)
    assert isinstance(result.labels, torch.Tensor) and result.labels.dtype == torch.int64
    assert result.scores.shape == (300, 3) and result.scores.dtype == torch.float64
    assert torch.all((result.confidence >= 0) & (result.confidence <= 1 + 1e-12))
    assert result.labels[:3].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(result.labels.numpy(), result.scores.numpy().argmax(1))
    again = clipadapt.label_propagation(torch.from_numpy(x), torch.from_numpy(labels), k=10)
    assert torch.equal(again.scores, result.scores), "not reproducible"


def test_single_class_and_seed_matrix():
    x = np.random.default_rng(2).standard_normal((50, 4)).astype(np.float32)
    one = clipadapt.label_propagation(x, np.array([0] + [-1] * 49), k=5)
    assert np.all(one.labels == 0) and np.all(one.confidence == 1.0)
    seeds = np.zeros((50, 2))
    seeds[0, 0] = seeds[1, 1] = 1.0
    by_matrix = clipadapt.label_propagation(x, seeds, k=5)
    by_ids = clipadapt.label_propagation(x, np.array([0, 1] + [-1] * 48), k=5)
    np.testing.assert_array_equal(by_matrix.scores, by_ids.scores)


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_precomputed_graph_or_affinity_gives_what_the_features_give(library, dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    labels = np.full(300, -1, dtype=np.int64)
    labels[:4] = np.arange(4)
    if library == "torch":
        x, labels = torch.from_numpy(x), torch.from_numpy(labels)
    settings = dict(alpha=0.9, kernel="cosine_power", gamma=3.0, symmetrize="sum", dtype=dtype)
    from_features = clipadapt.label_propagation(x, labels, k=7, **settings)
    graph = clipadapt.knn_graph(x, 7)
    from_graph = clipadapt.label_propagation(graph, labels, **settings)
    matrix = clipadapt.affinity(graph, kernel="cosine_power", gamma=3.0, symmetrize="sum", dtype=dtype)
    from_matrix = clipadapt.label_propagation(matrix, labels, alpha=0.9, dtype=dtype)
    for result in (from_graph, from_matrix):
        assert type(result.labels) is type(from_features.labels)
        np.testing.assert_array_equal(np.asarray(result.labels), np.asarray(from_features.labels))
        np.testing.assert_array_equal(np.asarray(result.scores), np.asarray(from_features.scores))
    assert from_graph.graph is graph and from_matrix.graph is None and from_matrix.affinity is matrix


def test_an_affinity_is_cast_to_the_dtype_asked_for_and_scipy_is_taken():
    x = np.random.default_rng(7).standard_normal((200, 6)).astype(np.float32)
    labels = np.array([0, 1] + [-1] * 198)
    matrix = clipadapt.affinity(clipadapt.knn_graph(x, 5), dtype="float32")
    result = clipadapt.label_propagation(matrix, labels, dtype="float64")
    assert result.scores.dtype == np.float64 and result.affinity.values.dtype == np.float64
    from_scipy = clipadapt.label_propagation(matrix.to_scipy(), labels, dtype="float64")
    np.testing.assert_array_equal(from_scipy.scores, result.scores)
    with pytest.raises(ValueError, match="S: must be square"):
        clipadapt.label_propagation(scipy.sparse.csr_matrix(np.ones((3, 4))), labels[:3])
    with pytest.raises(ValueError, match="labels: has 200 entries for 199 nodes"):
        clipadapt.label_propagation(clipadapt.knn_graph(x[:199], 5), labels)


def test_a_scipy_matrix_keeps_its_float_dtype():
    x = np.random.default_rng(8).standard_normal((120, 6)).astype(np.float32)
    matrix = clipadapt.affinity(clipadapt.knn_graph(x, 5), dtype="float32")
    y = np.zeros((120, 2), dtype=np.float32)
    y[0, 0] = y[1, 1] = 1.0
    solved = clipadapt.conjugate_gradient(matrix.to_scipy(), y)
    assert solved.solution.dtype == np.float32
    np.testing.assert_array_equal(solved.solution, clipadapt.conjugate_gradient(matrix, y).solution)
    assert CsrMatrix.from_scipy(scipy.sparse.csr_matrix(np.eye(3, dtype=np.int8))).values.dtype == np.float64


def test_check_finite_false_skips_the_screens():
    x = np.random.default_rng(8).standard_normal((60, 4)).astype(np.float32)
    labels = np.array([0, 1] + [-1] * 58)
    graph = clipadapt.knn_graph(x, 5)
    scores = graph.scores.copy()
    scores[3, 1] = np.nan
    bad = KnnGraph(scores, graph.indices, graph.n, "cosine")
    with pytest.raises(ValueError, match="graph.scores: contains NaN or Inf.*check_finite=False"):
        clipadapt.label_propagation(bad, labels)
    clipadapt.label_propagation(bad, labels, check_finite=False)  # the NaN edge propagates; no error
    matrix = clipadapt.affinity(graph)
    values = matrix.values.copy()
    values[0] = np.inf
    with pytest.raises(ValueError, match="S.values: contains NaN or Inf"):
        clipadapt.spmm(CsrMatrix(matrix.indptr, matrix.indices, values, matrix.shape), np.ones((60, 1)))
    clipadapt.spmm(CsrMatrix(matrix.indptr, matrix.indices, values, matrix.shape), np.ones((60, 1)),
                   check_finite=False)


X = np.random.default_rng(0).standard_normal((30, 5)).astype(np.float32)
LABELS = np.array([0, 1, 2] + [-1] * 27)


@pytest.mark.parametrize("call,error,message", [
    (lambda: clipadapt.label_propagation(X, np.array([0, 1, -2] + [-1] * 27), k=5), ValueError, "labels: entries"),
    (lambda: clipadapt.label_propagation(X, LABELS, k=5, n_classes=2), ValueError, "out of range"),
    (lambda: clipadapt.label_propagation(X, np.array([0, 2] + [-1] * 28), k=5), ValueError, r"classes \[1\] have no"),
    (lambda: clipadapt.label_propagation(X, -np.ones(30, dtype=np.int64), k=5), ValueError, "no labelled row"),
    (lambda: clipadapt.label_propagation(X, LABELS[:20], k=5), ValueError, "labels: has 20 entries"),
    (lambda: clipadapt.label_propagation(X, LABELS, alpha=1.0), ValueError, "alpha"),
    (lambda: clipadapt.label_propagation(X, LABELS, alpha=0.0), ValueError, "alpha"),
    (lambda: clipadapt.label_propagation(X, LABELS, alpha=-0.5), ValueError, "alpha"),
    (lambda: clipadapt.label_propagation(X, LABELS, k=30), ValueError, "k: 30 exceeds"),
    (lambda: clipadapt.label_propagation(np.where(np.arange(5) == 2, np.nan, X), LABELS, k=5), ValueError,
     "features: contains NaN"),
    (lambda: clipadapt.label_propagation(X, LABELS, dtype="float16"), ValueError, "dtype"),
    (lambda: clipadapt.label_propagation(X, LABELS, k=5, kernel="rbf"), ValueError, "kernel"),
    (lambda: clipadapt.label_propagation(X, LABELS, k=5, symmetrize="max"), ValueError, "symmetrize"),
    (lambda: clipadapt.label_propagation(X, LABELS, k=5, gamma=0), ValueError, "gamma"),
    (lambda: clipadapt.label_propagation(X, LABELS, k=5, max_iter=-1), ValueError, "max_iter"),
    (lambda: clipadapt.affinity(clipadapt.knn_graph(X, 3, metric="l2")), ValueError, "metric='cosine'"),
    (lambda: clipadapt.affinity(KnnGraph(np.zeros((4, 2), np.float32), np.full((4, 2), 7), 4, "cosine")),
     ValueError, r"graph.indices: entries must lie in \[0, n\)"),
    (lambda: clipadapt.conjugate_gradient(graph_operator()[0], np.ones((400, 2), np.float32)), TypeError,
     "Y: dtype float32 differs from S"),
    (lambda: clipadapt.conjugate_gradient(graph_operator()[0], np.ones((40, 2))), ValueError, "Y: has 40 rows"),
    (lambda: clipadapt.spmm(np.eye(3), np.ones((3, 1))), TypeError, "S: expected a clipadapt CsrMatrix"),
])
def test_bad_input_raises(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_more_classes_than_feature_dimensions():
    x = np.random.default_rng(4).standard_normal((400, 3)).astype(np.float32)  # d = 3 < C = 8
    labels = -np.ones(400, dtype=np.int64)
    labels[:8] = np.arange(8)
    result = clipadapt.label_propagation(x, labels, k=10, alpha=0.9, max_iter=200, tol=1e-10)
    s = result.affinity.to_scipy().toarray()
    seeds = np.zeros((400, 8))
    seeds[np.arange(8), np.arange(8)] = 1.0
    exact = np.linalg.solve(np.eye(400) - 0.9 * s, seeds)
    np.testing.assert_allclose(result.scores, exact, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(result.labels, exact.argmax(1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_class_solution_does_not_depend_on_the_other_classes(dtype):
    """Columns are independent CG solves: solving a subset of the classes, in another order,
    gives each class the same bits (no fused multiply-add in some vector lanes and not others)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((20000, 64)).astype(np.float32)
    seeds = np.zeros((20000, 45), dtype=dtype)
    seeds[rng.choice(20000, 45, replace=False), np.arange(45)] = 1
    S = clipadapt.affinity(clipadapt.knn_graph(x, 20), dtype=dtype)
    full = clipadapt.conjugate_gradient(S, seeds, alpha=0.99, max_iter=20, tol=1e-6).solution
    for columns in ([7], [44, 0], list(range(3, 20)), [40, 1, 2, 30, 31]):
        part = clipadapt.conjugate_gradient(S, np.ascontiguousarray(seeds[:, columns]), alpha=0.99, max_iter=20,
                                            tol=1e-6).solution
        np.testing.assert_array_equal(part, full[:, columns])
