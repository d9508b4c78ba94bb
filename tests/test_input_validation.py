"""Hand-built sparse matrices, non-finite seeds, numpy scalars, odd torch tensors: every bad
input is refused at the Python boundary with a message naming the argument (never a crash, a
wrong answer or an internal message); every good one is accepted."""
import numpy as np
import pytest
import torch

import clipadapt
from clipadapt import CsrMatrix, KnnGraph
from clipadapt.mudg.retrieve import rank_vote, select_per_class

RNG = np.random.default_rng(0)
X = RNG.standard_normal((30, 5)).astype(np.float32)
LABELS = np.array([0, 1, 2] + [-1] * 27)

# S = 0.5 * [[0, 1], [1, 0]]: a valid symmetric 2 x 2 matrix to break one field at a time.
INDPTR, INDICES, VALUES = np.array([0, 1, 2]), np.array([1, 0]), np.array([0.5, 0.5])


def csr(indptr=INDPTR, indices=INDICES, values=VALUES, shape=(2, 2)):
    return CsrMatrix(indptr=indptr, indices=indices, values=values, shape=shape)


def as_torch(matrix):
    return CsrMatrix(*(torch.as_tensor(array) for array in (matrix.indptr, matrix.indices, matrix.values)),
                     shape=matrix.shape)


def raises_cleanly(call, error, message):
    with pytest.raises(error, match=message) as raised:
        call()
    assert "Python layer" not in str(raised.value)


MALFORMED_CSR = [
    (csr(indices=np.array([7, 0])), ValueError, r"S.indices: column 7 \(entry 0\) is outside \[0, 2\)"),
    (csr(indices=np.array([1, 10**12])), ValueError, "S.indices: column 1000000000000 .* outside"),
    (csr(indices=np.array([-1, 0])), ValueError, "S.indices: column -1"),
    (csr(indptr=np.array([0, 2, 1, 2]), shape=(3, 2)), ValueError, r"S.indptr: must not decrease.*indptr\[2\] = 1"),
    (csr(indptr=np.array([1, 1, 2])), ValueError, "S.indptr: must start at 0"),
    (csr(indptr=np.array([0, 1, 1])), ValueError, "S.indptr: must end at nnz = 2"),
    (csr(indptr=np.array([0, 2])), ValueError, r"S.indptr: has 2 entries but S has 2 rows; it needs rows \+ 1 = 3"),
    (csr(indptr=INDPTR[None]), ValueError, "S.indptr: expected a 1-D array"),
    (csr(indices=INDICES.astype(np.int32)), TypeError, r"S.indices: dtype int32 .* \(cast with"),
    (csr(values=VALUES.astype(np.float16)), TypeError, "S.values: dtype float16"),
    (csr(values=VALUES[:1]), ValueError, "S.values: has 1 entries but S.indices has 2"),
    (csr(values=np.array([np.nan, 0.5])), ValueError, "S.values: contains NaN or Inf"),
    (csr(shape=(2,)), TypeError, r"S.shape: must be a pair"),
    (csr(shape=(2.0, 2)), TypeError, "S.shape: must be an integer"),
]


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("matrix,error,message", MALFORMED_CSR)
def test_malformed_csr_is_refused_by_spmm_and_conjugate_gradient(matrix, error, message, library):
    dense = np.ones((matrix.shape[-1] if len(matrix.shape) == 2 else 2, 1))
    if library == "torch":
        matrix, dense = as_torch(matrix), torch.from_numpy(dense)
    raises_cleanly(lambda: clipadapt.spmm(matrix, dense), error, message)
    raises_cleanly(lambda: clipadapt.conjugate_gradient(matrix, dense, alpha=0.5), error, message)


def test_conjugate_gradient_needs_a_square_matrix():
    raises_cleanly(lambda: clipadapt.conjugate_gradient(csr(shape=(2, 3)), np.ones((3, 1))), ValueError,
                   r"S: must be square, got shape \(2, 3\)")


def test_non_contiguous_csr_arrays_are_read_correctly():
    strided = csr(indices=np.array([1, -5, 0, -5])[::2], values=np.array([0.5, 9.0, 0.5, 9.0])[::2])
    np.testing.assert_array_equal(clipadapt.spmm(strided, np.array([[1.0], [2.0]])), [[1.0], [0.5]])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_seeds_are_refused(bad):
    seeds = np.eye(2)
    seeds[1, 0] = bad
    raises_cleanly(lambda: clipadapt.conjugate_gradient(csr(), seeds), ValueError, "Y: contains NaN or Inf")
    seed_matrix = np.zeros((30, 3))
    seed_matrix[[0, 1, 2], [0, 1, 2]] = 1.0
    seed_matrix[5, 1] = bad
    raises_cleanly(lambda: clipadapt.label_propagation(X, seed_matrix, k=5), ValueError,
                   "labels: contains NaN or Inf")


def test_zero_column_right_hand_sides_are_refused():
    raises_cleanly(lambda: clipadapt.conjugate_gradient(csr(), np.ones((2, 0))), ValueError, "Y: empty array")
    raises_cleanly(lambda: clipadapt.spmm(csr(), np.ones((2, 0))), ValueError, "X: empty array")
    raises_cleanly(lambda: clipadapt.label_propagation(X, np.zeros((30, 0)), k=5), ValueError,
                   "labels: the seed matrix has no columns")


def test_numpy_scalars_are_numbers():
    solved = clipadapt.conjugate_gradient(csr(), np.eye(2), alpha=0.5, max_iter=10, tol=0.0)
    with_numpy = clipadapt.conjugate_gradient(csr(), np.eye(2), alpha=np.float32(0.5), max_iter=np.int32(10),
                                              tol=np.float64(0.0))
    np.testing.assert_array_equal(with_numpy.solution, solved.solution)
    plain = clipadapt.label_propagation(X, LABELS, k=5, alpha=0.875, gamma=2.0, n_classes=3)
    numpy = clipadapt.label_propagation(X, LABELS, k=np.int64(5), alpha=np.float32(0.875), gamma=np.float16(2.0),
                                        n_classes=np.uint8(3))
    np.testing.assert_array_equal(numpy.scores, plain.scores)
    means = clipadapt.kmeans(X, np.int64(3), max_iter=np.int32(2), tol=np.float32(1e-3), seed=np.uint64(4),
                             max_points_per_centroid=np.int8(5))
    np.testing.assert_array_equal(means.centroids, clipadapt.kmeans(X, 3, max_iter=2, tol=1e-3, seed=4,
                                                                    max_points_per_centroid=5).centroids)
    index = clipadapt.IVFIndex(X[:4]).add(X)
    np.testing.assert_array_equal(index.search(X, np.int16(3), nprobe=np.int64(2))[1], index.search(X, 3, 2)[1])
    graph = clipadapt.knn_graph(X, np.int32(4))
    np.testing.assert_array_equal(clipadapt.affinity(graph, gamma=np.float32(2.0)).values,
                                  clipadapt.affinity(graph, gamma=2.0).values)
    threads = clipadapt.get_num_threads()
    clipadapt.set_num_threads(np.int64(1))
    assert clipadapt.get_num_threads() == 1
    clipadapt.set_num_threads(threads)


@pytest.mark.parametrize("call,error,message", [
    (lambda: clipadapt.kmeans(X, 3, seed=None), TypeError, "seed: must be an integer, got None"),
    (lambda: clipadapt.kmeans(X, 3, seed=-1), ValueError, "seed: must be an integer >= 0, got -1"),
    (lambda: clipadapt.kmeans(X, 3, seed=1.5), TypeError, "seed: must be an integer, got 1.5"),
    (lambda: clipadapt.kmeans(X, 3, init="random", seed=-1), ValueError, "seed: must be an integer >= 0"),
    (lambda: clipadapt.kmeans(X, 3, max_points_per_centroid=0), ValueError,
     "max_points_per_centroid: must be an integer >= 1, got 0"),
    (lambda: clipadapt.kmeans(X, 3, max_points_per_centroid=-1), ValueError,
     "max_points_per_centroid: must be an integer >= 1, got -1"),
    (lambda: clipadapt.kmeans(X, 2.5), TypeError, "n_clusters: must be an integer, got 2.5"),
    (lambda: clipadapt.kmeans(X, 3, init=np.full((3, 5), np.nan, np.float32)), ValueError, "init: contains NaN"),
    (lambda: clipadapt.paired_kmeans(X, X[:, :4], 3), ValueError, "assign_x and update_x: dimensions differ"),
    (lambda: clipadapt.assign(X, X[:3], chunk_rows=0), ValueError, "chunk_rows: must be an integer >= 1"),
    (lambda: clipadapt.kmeans(X, 3, tol=-1e-3), ValueError, "tol: must be a finite number >= 0"),
    (lambda: clipadapt.set_num_threads(2.5), TypeError, "threads: must be an integer, got 2.5"),
    (lambda: clipadapt.set_num_threads(0), ValueError, "threads: must be an integer >= 1"),
    (lambda: clipadapt.assign(X, X[:3, :4]), ValueError, "x and centroids: feature dimensions differ"),
    (lambda: clipadapt.assign(X, X[:3].astype(np.float16)), TypeError, "x and centroids: dtypes differ"),
    (lambda: clipadapt.conjugate_gradient(csr(), np.eye(2), alpha=True), TypeError, "alpha: must be a finite"),
    (lambda: clipadapt.conjugate_gradient(csr(), np.eye(2), alpha=1.0), ValueError, "alpha: .* > 0 and < 1"),
    (lambda: clipadapt.conjugate_gradient(csr(), np.eye(2), tol=float("nan")), ValueError, "tol: must be a finite"),
    (lambda: clipadapt.conjugate_gradient(csr(), np.eye(2), max_iter=2.0), TypeError, "max_iter: must be an integer"),
    (lambda: clipadapt.label_propagation(X, LABELS, k=5, n_classes=3.5), TypeError, "n_classes: must be an integer"),
    (lambda: clipadapt.label_propagation(X, LABELS, k=5, gamma="2"), TypeError, "gamma: must be a finite number"),
    (lambda: clipadapt.IVFIndex(np.full((3, 5), np.nan, np.float32)), ValueError, "centroids: contains NaN or Inf"),
    (lambda: clipadapt.IVFIndex(X[:0]), ValueError, "centroids: empty array"),
    (lambda: clipadapt.IVFIndex(X[:3]).add(X[:0]), ValueError, "x: has no rows"),
    (lambda: clipadapt.IVFIndex.from_lists(X[:3], X[:0], np.zeros(0, np.int64)), ValueError, "x: has no rows"),
    (lambda: clipadapt.affinity(KnnGraph(np.zeros((3, 0), np.float32), np.zeros((3, 0), np.int64), 3, "cosine")),
     ValueError, "graph: has shape"),
    (lambda: clipadapt.affinity(KnnGraph(np.full((3, 2), np.nan, np.float32), np.zeros((3, 2), np.int64), 3,
                                         "cosine")), ValueError, "graph.scores: contains NaN"),
])
def test_bad_settings_are_refused_with_their_name(call, error, message):
    raises_cleanly(call, error, message)


@pytest.mark.parametrize("call", [
    lambda x: clipadapt.knn(x, x, 3),
    lambda x: clipadapt.knn_graph(x, 3),
    lambda x: clipadapt.kmeans(x, 3, max_iter=2),
    lambda x: clipadapt.assign(x, x[:3]),
    lambda x: clipadapt.IVFIndex(x[:4]).add(x).search(x, 3, nprobe=2),
    lambda x: clipadapt.label_propagation(x, torch.from_numpy(LABELS), k=5),
])
def test_tensors_that_require_grad_are_read_as_their_values(call):
    def results(x):
        value = call(x)
        fields = value.__dict__.values() if hasattr(value, "__dict__") else value
        return [field for field in fields if isinstance(field, torch.Tensor)]

    plain = results(torch.from_numpy(X))
    tracked = results(torch.from_numpy(X).requires_grad_())
    assert plain and len(tracked) == len(plain)
    for got, want in zip(tracked, plain):
        assert not got.requires_grad
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_seed_matrix_that_requires_grad_is_read_as_its_values():
    seeds = torch.zeros(30, 3, dtype=torch.float64)
    seeds[[0, 1, 2], [0, 1, 2]] = 1.0
    tracked = clipadapt.label_propagation(torch.from_numpy(X), seeds.clone().requires_grad_(), k=5)
    torch.testing.assert_close(tracked.scores, clipadapt.label_propagation(torch.from_numpy(X), seeds, k=5).scores,
                               rtol=0, atol=0)


META = torch.empty(30, 5, device="meta")


@pytest.mark.parametrize("call,name", [
    (lambda: clipadapt.knn(META, META, 3), "queries"),
    (lambda: clipadapt.kmeans(META, 3), "assign_x"),
    (lambda: clipadapt.IVFIndex(META), "centroids"),
    (lambda: clipadapt.IVFIndex(X[:3]).add(META), "x"),
    (lambda: clipadapt.label_propagation(META, LABELS, k=5), "features"),
    (lambda: clipadapt.spmm(csr(), torch.empty(2, 1, dtype=torch.float64, device="meta")), "X"),
])
def test_meta_tensors_are_refused(call, name):
    raises_cleanly(call, ValueError, f"{name}: is a meta tensor, which has a shape but no values")


def test_sparse_tensors_are_refused():
    raises_cleanly(lambda: clipadapt.knn(torch.from_numpy(X).to_sparse(), X, 3), TypeError,
                   r"queries: is a sparse tensor .*\.to_dense\(\)")


@pytest.mark.parametrize("call,error,message", [
    (lambda: rank_vote(np.array([[0, 1]]), np.array([0]), 1, seed=-1), ValueError, "seed: must be an integer >= 0"),
    (lambda: select_per_class(X, np.zeros(30, np.int64), 2, seed=1.5), TypeError, "seed: must be an integer"),
    (lambda: select_per_class(X, np.zeros(30, np.int64), np.float32(2)), TypeError, "k_sel: must be an integer"),
])
def test_mudg_settings_are_checked_like_the_primitives(call, error, message):
    raises_cleanly(call, error, message)


def test_mudg_settings_accept_numpy_integers():
    np.testing.assert_array_equal(select_per_class(X, np.zeros(30, np.int64), np.int64(4), seed=np.int32(1)),
                                  select_per_class(X, np.zeros(30, np.int64), 4, seed=1))


ODD_ARRAYS = {"no rows": X[:0], "no columns": X[:, :0], "1-D": X[0], "3-D": X[None], "strided": X[::2, ::2],
              "Fortran order": np.asfortranarray(X), "bool": X > 0, "nested list": X.tolist(), "None": None,
              "float64": X.astype(np.float64), "strided tensor": torch.from_numpy(X)[:, ::2]}
EVERY_ARRAY_ARGUMENT = {
    "knn queries": lambda v: clipadapt.knn(v, X, 2), "knn database": lambda v: clipadapt.knn(X, v, 2),
    "knn_graph": lambda v: clipadapt.knn_graph(v, 2), "assign x": lambda v: clipadapt.assign(v, X[:3]),
    "assign centroids": lambda v: clipadapt.assign(X, v), "kmeans": lambda v: clipadapt.kmeans(v, 2, max_iter=1),
    "kmeans init": lambda v: clipadapt.kmeans(X, 2, init=v, max_iter=1),
    "paired_kmeans update_x": lambda v: clipadapt.paired_kmeans(X, v, 2, max_iter=1),
    "IVFIndex centroids": lambda v: clipadapt.IVFIndex(v).add(X).search(X, 2, 1),
    "IVFIndex.add": lambda v: clipadapt.IVFIndex(X[:3]).add(v),
    "IVFIndex.search": lambda v: clipadapt.IVFIndex(X[:3]).add(X).search(v, 2, 1),
    "label_propagation features": lambda v: clipadapt.label_propagation(v, LABELS, k=3),
    "label_propagation labels": lambda v: clipadapt.label_propagation(X, v, k=3),
    "spmm X": lambda v: clipadapt.spmm(csr(), v),
    "conjugate_gradient Y": lambda v: clipadapt.conjugate_gradient(csr(), v),
    "S.indptr": lambda v: clipadapt.spmm(csr(indptr=v), np.eye(2)),
    "S.values": lambda v: clipadapt.spmm(csr(values=v), np.eye(2)),
}


@pytest.mark.parametrize("argument", EVERY_ARRAY_ARGUMENT)
def test_odd_arrays_never_reach_the_kernels_unchecked(argument):
    for name, value in ODD_ARRAYS.items():
        try:
            EVERY_ARRAY_ARGUMENT[argument](value)
        except (ValueError, TypeError) as error:
            assert not any(internal in str(error) for internal in ("Python layer", "DLPack", "must be 2-D")), \
                f"{argument} given {name}: {error}"
