"""Label propagation on a k-NN graph: :func:`label_propagation` and its steps :func:`affinity`,
:func:`conjugate_gradient` and :func:`spmm`.

The graph is the exact k-NN graph of the features; its kernel affinities are symmetrised and
normalised into a sparse CSR matrix S on the device of the data, and (I - alpha S) F = Y is
solved for all classes at once by block conjugate gradient. No n x n dense matrix is formed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from clipadapt import _native, _validate
from clipadapt._arrays import to_numpy
from clipadapt._native import _core
from clipadapt.neighbors import KnnGraph, knn_graph

__all__ = ["ConjugateGradientResult", "CsrMatrix", "Dtype", "Kernel", "LabelPropagationResult", "Symmetrize",
           "affinity", "conjugate_gradient", "label_propagation", "spmm"]

Kernel = Literal["shifted_cosine", "cosine_power"]
Symmetrize = Literal["mean", "sum"]
Dtype = Literal["float64", "float32"]
_KERNELS = ("shifted_cosine", "cosine_power")
_SYMMETRIZE = ("mean", "sum")
_DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class CsrMatrix:
    """A square sparse matrix in CSR form, arrays in the library and on the device they were built on.

    Attributes:
        indptr: int64 [n + 1] row starts.
        indices: int64 [nnz] column ids, increasing within each row.
        values: float32 or float64 [nnz].
        shape: (n, n).
        degrees: float64 [n] row sums of the unnormalised affinity W, or None.
    """

    indptr: Any
    indices: Any
    values: Any
    shape: tuple[int, int]
    degrees: Any = None

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])

    @property
    def dtype(self) -> str:
        return _native.as_input(self.values, "values", ndim=1, dtypes=_DTYPES).dtype

    def to_scipy(self) -> Any:
        """A ``scipy.sparse.csr_matrix`` (copied to the host)."""
        import scipy.sparse

        return scipy.sparse.csr_matrix(
            (to_numpy(self.values), to_numpy(self.indices), to_numpy(self.indptr)), shape=self.shape)

    def to_torch(self) -> Any:
        """A ``torch.sparse_csr_tensor`` on the arrays' device (shares memory where torch can)."""
        import torch

        return torch.sparse_csr_tensor(torch.as_tensor(self.indptr), torch.as_tensor(self.indices),
                                       torch.as_tensor(self.values), size=self.shape, check_invariants=False)

    @classmethod
    def from_scipy(cls, matrix: Any, dtype: Dtype | None = None) -> "CsrMatrix":
        """Wraps a scipy sparse matrix (converted to CSR with sorted int64 indices) as numpy arrays;
        its values keep a float32 or float64 dtype unless ``dtype`` says otherwise (any other
        dtype becomes float64)."""
        csr = matrix.tocsr()
        if dtype is None:
            dtype = csr.dtype.name if csr.dtype.name in ("float32", "float64") else "float64"
        csr.sum_duplicates()
        csr.sort_indices()
        return cls(indptr=csr.indptr.astype(np.int64), indices=csr.indices.astype(np.int64),
                   values=csr.data.astype(dtype), shape=tuple(int(s) for s in csr.shape))


def affinity(graph: KnnGraph, *, kernel: Kernel = "shifted_cosine", gamma: float = 1.0,
             symmetrize: Symmetrize = "mean", normalize: bool = True, dtype: Dtype = "float64",
             check_finite: bool = True) -> CsrMatrix:
    """The symmetric, normalised affinity S = D^-1/2 W D^-1/2 of a k-NN graph, as CSR.

    a_ij = ((1 + cos_ij) / 2) ** gamma (``"shifted_cosine"``, ReCLIP) or max(cos_ij, 0) ** gamma
    (``"cosine_power"``, Iscen et al. use gamma = 3) on each edge; W = (A + A^T) / 2 (``"mean"``)
    or A + A^T (``"sum"``), duplicate edges summed, zero diagonal. A node of degree 0 gets an
    empty row (no NaN). Built on the device that holds the graph.

    Args:
        graph: a cosine (or inner-product, on unit rows) :class:`KnnGraph` with n nodes, k edges each.
        normalize: False returns W itself.
        dtype: value dtype of the result.
        check_finite: screen ``graph.scores`` for NaN/Inf first.

    Returns:
        :class:`CsrMatrix` [n, n] with ``degrees`` (float64 [n], row sums of W).
    """
    if graph.metric not in ("cosine", "ip"):
        raise ValueError(f"graph: affinities need cosine similarities, got a {graph.metric!r} graph; "
                         "build it with metric='cosine'")
    _validate.choice(kernel, "kernel", _KERNELS)
    _validate.choice(symmetrize, "symmetrize", _SYMMETRIZE)
    _validate.choice(dtype, "dtype", _DTYPES)
    gamma = _validate.real(gamma, "gamma", above=0)
    neighbors = _native.as_input(graph.indices, "graph.indices", dtypes=("int64",))
    similarities = _native.as_input(graph.scores, "graph.scores", dtypes=("float32",))
    _native.require_same_device(neighbors, "graph.indices", similarities, "graph.scores")
    if 0 in neighbors.shape:
        raise ValueError(f"graph: has shape {neighbors.shape}; an affinity needs at least one node and one "
                         "neighbour per node")
    stream = _native.current_stream(neighbors)
    if check_finite:
        _native.check_finite(similarities, "graph.scores", stream)
    n, k = neighbors.shape
    indptr = _native.empty(neighbors, (n + 1,), "int64")
    indices = _native.empty(neighbors, (2 * n * k,), "int64")
    values = _native.empty(neighbors, (2 * n * k,), dtype)
    degrees = _native.empty(neighbors, (n,), "float64")
    capsule = _native.capsule
    nnz = _core.affinity_into(capsule(neighbors.value, stream), capsule(similarities.value, stream), kernel,
                              gamma, symmetrize, bool(normalize), capsule(indptr, stream),
                              capsule(indices, stream), capsule(values, stream), capsule(degrees, stream), stream)
    return CsrMatrix(indptr=indptr, indices=indices[:nnz], values=values[:nnz], shape=(n, n), degrees=degrees)


@dataclass(frozen=True)
class _CheckedCsr:
    """S after :func:`_checked_csr`: C-contiguous arrays on one device and a valid structure."""

    indptr: _native.Array
    indices: _native.Array
    values: _native.Array
    rows: int
    cols: int

    def capsules(self, stream: int) -> tuple[Any, Any, Any]:
        return tuple(_native.capsule(array.value, stream) for array in (self.indptr, self.indices, self.values))


def _checked_csr(matrix: Any, check_finite: bool) -> _CheckedCsr:
    """S validated once at the boundary, so that the kernels never read outside its arrays:
    dtypes, lengths and device of the arrays, indptr running from 0 to nnz without
    decreasing, column ids in [0, columns); and, with ``check_finite``, finite values."""
    if hasattr(matrix, "tocsr") and not isinstance(matrix, CsrMatrix):
        matrix = CsrMatrix.from_scipy(matrix)
    if not isinstance(matrix, CsrMatrix):
        raise TypeError(f"S: expected a clipadapt CsrMatrix or a scipy sparse matrix, got {type(matrix).__name__}")
    if not isinstance(matrix.shape, (tuple, list)) or len(matrix.shape) != 2:
        raise TypeError(f"S.shape: must be a pair (rows, columns), got {matrix.shape!r}")
    rows, cols = (_validate.integer(size, "S.shape", minimum=0) for size in matrix.shape)
    indptr = _native.as_input(matrix.indptr, "S.indptr", ndim=1, dtypes=("int64",))
    indices = _native.as_input(matrix.indices, "S.indices", ndim=1, dtypes=("int64",))
    values = _native.as_input(matrix.values, "S.values", ndim=1, dtypes=_DTYPES)
    _native.require_same_device(indptr, "S.indptr", indices, "S.indices")
    _native.require_same_device(indptr, "S.indptr", values, "S.values")
    if indptr.shape[0] != rows + 1:
        raise ValueError(f"S.indptr: has {indptr.shape[0]} entries but S has {rows} rows; it needs rows + 1 = "
                         f"{rows + 1} (where each row starts in S.indices, then nnz)")
    if values.shape[0] != indices.shape[0]:
        raise ValueError(f"S.values: has {values.shape[0]} entries but S.indices has {indices.shape[0]}; give one "
                         "value per stored entry")
    if _csr_is_malformed(indptr, indices.value, values.value, cols, check_finite):
        _raise_csr_problem(to_numpy(indptr.value), to_numpy(indices.value), to_numpy(values.value), rows, cols)
    return _CheckedCsr(indptr, indices, values, rows, cols)


def _csr_is_malformed(indptr: _native.Array, indices: Any, values: Any, cols: int, check_finite: bool) -> bool:
    """One vectorised pass in the arrays' own library and device, and one host synchronisation."""
    xp = _native.namespace(indptr.library)
    starts = indptr.value
    malformed = (starts[0] != 0) | (starts[-1] != indices.shape[0]) | (starts[1:] < starts[:-1]).any()
    if indices.shape[0]:
        malformed = malformed | (indices.min() < 0) | (indices.max() >= cols)
        if check_finite:
            malformed = malformed | ~xp.isfinite(values).all()
    return bool(malformed)


def _raise_csr_problem(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, rows: int, cols: int) -> None:
    """Names the first thing wrong in S (host copies; only called once S is known to be malformed)."""
    nnz = indices.shape[0]
    if indptr[0] != 0:
        raise ValueError(f"S.indptr: must start at 0 (row 0 starts at the first stored entry), starts at {indptr[0]}")
    if indptr[-1] != nnz:
        raise ValueError(f"S.indptr: must end at nnz = {nnz} (the length of S.indices), ends at {indptr[-1]}")
    decreasing = np.flatnonzero(indptr[1:] < indptr[:-1])
    if decreasing.size:
        row = int(decreasing[0])
        raise ValueError(f"S.indptr: must not decrease, but indptr[{row + 1}] = {indptr[row + 1]} < indptr[{row}] = "
                         f"{indptr[row]}")
    outside = np.flatnonzero((indices < 0) | (indices >= cols))
    if outside.size:
        position = int(outside[0])
        raise ValueError(f"S.indices: column {indices[position]} (entry {position}) is outside [0, {cols}) for S of "
                         f"shape ({rows}, {cols}); fix the entry or the shape")
    raise ValueError("S.values: contains NaN or Inf; clean the matrix")


def _dense_operand(values: Any, name: str, matrix: _CheckedCsr) -> _native.Array:
    dense = _native.as_input(values, name, dtypes=_DTYPES)
    if dense.dtype != matrix.values.dtype:
        raise TypeError(f"{name}: dtype {dense.dtype} differs from S ({matrix.values.dtype}); cast it to "
                        f"{matrix.values.dtype}")
    if dense.shape[0] != matrix.cols:
        raise ValueError(f"{name}: has {dense.shape[0]} rows but S is {matrix.rows} x {matrix.cols}")
    if 0 in dense.shape:
        raise ValueError(f"{name}: empty array of shape {dense.shape}; need at least one row and one column")
    _native.require_same_device(matrix.indptr, "S", dense, name)
    return dense


def spmm(matrix: CsrMatrix, x: Any, *, check_finite: bool = True) -> Any:
    """S @ X for CSR S [n, m] (:class:`CsrMatrix` or scipy sparse) and dense X [m, C] of the same
    float dtype (float32 or float64) and device; returns [n, C] of that dtype, in X's library.
    ``check_finite`` screens S's values and X for NaN/Inf first."""
    checked = _checked_csr(matrix, check_finite)
    dense = _dense_operand(x, "X", checked)
    if check_finite:
        _native.check_finite(dense, "X", _native.current_stream(dense))
    out = _native.empty(dense, (checked.rows, dense.shape[1]), dense.dtype)
    stream = _native.current_stream(dense)
    _core.spmm_into(*checked.capsules(stream), checked.rows, checked.cols, _native.capsule(dense.value, stream), None,
                    _native.capsule(out, stream), 1.0, 0.0, stream)
    return out


@dataclass(frozen=True)
class ConjugateGradientResult:
    """Block CG output: ``solution`` [n, C], ``iterations`` int64 [C] and ``residuals`` float64 [C]
    (final ||r|| / ||b|| per column; 0 for an all-zero column)."""

    solution: Any
    iterations: Any
    residuals: Any


def _solver_settings(alpha: Any, max_iter: Any, tol: Any) -> tuple[float, int, float]:
    return (_validate.real(alpha, "alpha", above=0, below=1), _validate.integer(max_iter, "max_iter", minimum=0),
            _validate.real(tol, "tol", at_least=0))


def conjugate_gradient(matrix: CsrMatrix, y: Any, *, alpha: float = 0.99, max_iter: int = 20,
                       tol: float = 1e-6, check_finite: bool = True) -> ConjugateGradientResult:
    """Solve (I - alpha S) F = Y for every column of Y at once (block CG, lock step).

    Each column gets its own step sizes, so the result equals C independent CG solves from
    F = 0 (as ``scipy.sparse.linalg.cg`` column by column). A column stops once
    ||r|| <= tol ||y||; all stop after ``max_iter`` iterations.

    Args:
        matrix: symmetric S [n, n] (:class:`CsrMatrix` or scipy sparse).
        y: right-hand sides [n, C], the dtype of S's values, on S's device.
        alpha: in (0, 1).
        check_finite: screen S's values and Y for NaN/Inf first (a NaN or Inf column of Y
            reads as converged after 0 iterations and hands its class to every row).

    Returns:
        :class:`ConjugateGradientResult`, arrays in Y's library and on its device.
    """
    checked = _checked_csr(matrix, check_finite)
    if checked.rows != checked.cols:
        raise ValueError(f"S: must be square, got shape ({checked.rows}, {checked.cols})")
    alpha, max_iter, tol = _solver_settings(alpha, max_iter, tol)
    rhs = _dense_operand(y, "Y", checked)
    stream = _native.current_stream(rhs)
    if check_finite:
        _native.check_finite(rhs, "Y", stream)
    columns = rhs.shape[1]
    solution = _native.empty(rhs, rhs.shape, rhs.dtype)
    iterations = _native.empty(rhs, (columns,), "int64")
    residuals = _native.empty(rhs, (columns,), "float64")
    _core.conjugate_gradient_into(*checked.capsules(stream), checked.rows, _native.capsule(rhs.value, stream), alpha,
                                  max_iter, tol, _native.capsule(solution, stream),
                                  _native.capsule(iterations, stream), _native.capsule(residuals, stream), stream)
    return ConjugateGradientResult(solution=solution, iterations=iterations, residuals=residuals)


@dataclass(frozen=True)
class LabelPropagationResult:
    """Output of :func:`label_propagation`, arrays in the library and on the device of what it
    propagated over (the features, the graph or S).

    Attributes:
        scores: F [n, C] (of the ``dtype`` asked for), the solution of (I - alpha S) F = Y.
        labels: int64 [n], argmax of each row of F (ties to the lower class).
        confidence: float64 [n], 1 - H(p) / log C with p the row-normalised max(F, 0)
            (0 for a row with no positive score; 1 when C = 1).
        iterations: int64 [C] CG iterations per class.
        residuals: float64 [C] final relative residual per class.
        graph: the k-NN graph (built from the features, or the one given; None when S was given).
        affinity: the normalised sparse affinity S.
    """

    scores: Any
    labels: Any
    confidence: Any
    iterations: Any
    residuals: Any
    graph: KnnGraph | None
    affinity: CsrMatrix


def label_propagation(features: Any, labels: Any, *, k: int = 20, alpha: float = 0.99,
                      kernel: Kernel = "shifted_cosine", gamma: float = 1.0, symmetrize: Symmetrize = "mean",
                      max_iter: int = 20, tol: float = 1e-6, dtype: Dtype = "float64",
                      n_classes: int | None = None, check_finite: bool = True) -> LabelPropagationResult:
    """Propagate labels over the exact k-NN graph of ``features``, or over a graph or S given.

    Args:
        features: one of

            - node features [n, d] float32/float16/bfloat16, CPU or CUDA (numpy, torch, cupy):
              their exact cosine k-NN graph is built;
            - a cosine :class:`KnnGraph` of n nodes (e.g. from :func:`knn_graph`; ``k`` unused);
            - the normalised affinity S [n, n] itself, a :class:`CsrMatrix` (e.g. from
              :func:`affinity`) or a scipy sparse matrix, symmetric (``k``, ``kernel``,
              ``gamma`` and ``symmetrize`` unused; values cast to ``dtype`` if they differ).

            Given the graph or S that the features would give, the result is the same.
        labels: int64 [n] class ids with -1 for unlabelled rows, or a dense seed matrix Y [n, C]
            of ``dtype``. Every class 0..C-1 needs at least one labelled row.
        k: neighbours per node (self excluded), 1 <= k < n.
        alpha: propagation strength in (0, 1).
        kernel, gamma, symmetrize: the affinity (see :func:`affinity`).
        max_iter, tol: CG stopping rule per class.
        dtype: of S, Y and F: "float64" (the released ReCLIP recipe solves in float64) or "float32".
        n_classes: C when ``labels`` are ids; default max(labels) + 1.
        check_finite: screen the features (graph scores, S's values) and a seed matrix for NaN/Inf.

    Returns:
        :class:`LabelPropagationResult`.

    Raises:
        TypeError: unsupported dtypes, or a seed matrix whose dtype is not ``dtype``.
        ValueError: empty features, k out of range, alpha outside (0, 1), labels of the wrong
            length or with a class that has no labelled row, a malformed or non-square S,
            arrays on different devices, or NaN/Inf in the features, the graph scores, S or Y.

    Cost: the k-NN graph (as :func:`knn_graph`), then at most ``max_iter`` iterations of one
    sparse product over 2 n k entries for all C classes at once. Memory: the graph (12 n k
    bytes), S (up to 2 n k entries) and about five [n, C] blocks of ``dtype``.
    """
    _validate.choice(dtype, "dtype", _DTYPES)
    _solver_settings(alpha, max_iter, tol)
    graph = matrix = None
    if isinstance(features, KnnGraph):
        graph = features
        nodes = _native.as_input(graph.scores, "graph.scores", dtypes=("float32",))
    elif isinstance(features, CsrMatrix) or hasattr(features, "tocsr"):
        matrix = _with_dtype(features, dtype)
        nodes = _native.as_input(matrix.values, "S.values", ndim=1, dtypes=_DTYPES)
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"S: must be square, got shape {tuple(matrix.shape)}")
    else:
        nodes = _native.as_input(features, "features")
        if 0 in nodes.shape:
            raise ValueError(f"features: empty array of shape {nodes.shape}; need at least one row and one column")
    given_matrix = matrix is not None
    n = matrix.shape[0] if given_matrix else graph.n if graph is not None else nodes.shape[0]
    seeds = _seed_matrix(labels, n, nodes, dtype, n_classes, check_finite)
    if not given_matrix:
        if graph is None:
            if check_finite:
                _native.check_finite(nodes, "features", _native.current_stream(nodes))
            graph = knn_graph(nodes.value, k, metric="cosine", check_finite=False)
        matrix = affinity(graph, kernel=kernel, gamma=gamma, symmetrize=symmetrize, dtype=dtype,
                          check_finite=check_finite)
    # Y is screened; an S built here comes from screened scores, so only a given S is screened again.
    solved = conjugate_gradient(matrix, seeds, alpha=alpha, max_iter=max_iter, tol=tol,
                                check_finite=check_finite and given_matrix)
    predicted, confidence = _argmax_and_confidence(solved.solution, nodes.library)
    return LabelPropagationResult(scores=solved.solution, labels=predicted, confidence=confidence,
                                  iterations=solved.iterations, residuals=solved.residuals, graph=graph,
                                  affinity=matrix)


def _with_dtype(matrix: Any, dtype: str) -> CsrMatrix:
    """A :class:`CsrMatrix` or scipy sparse matrix as a :class:`CsrMatrix` with ``dtype`` values."""
    if not isinstance(matrix, CsrMatrix):
        return CsrMatrix.from_scipy(matrix, dtype=dtype)
    values = _native.as_input(matrix.values, "S.values", ndim=1, dtypes=_DTYPES)
    if values.dtype == dtype:
        return matrix
    return dataclasses.replace(matrix, values=_native.astype(values.value, values.library, dtype))


def _seed_matrix(labels: Any, n: int, nodes: _native.Array, dtype: str, n_classes: int | None,
                 check_finite: bool) -> Any:
    """Y [n, C] in the library and on the device of ``nodes``: one-hot rows for labelled nodes."""
    if getattr(labels, "ndim", None) == 2:
        seeds = _native.as_input(labels, "labels", dtypes=("float32", "float64"))
        if seeds.shape[0] != n:
            raise ValueError(f"labels: has {seeds.shape[0]} rows for {n} nodes")
        if seeds.shape[1] == 0:
            raise ValueError("labels: the seed matrix has no columns; give one column per class")
        _native.require_same_device(nodes, "features", seeds, "labels")
        if seeds.dtype != dtype:
            raise TypeError(f"labels: seed matrix dtype {seeds.dtype} differs from dtype ({dtype})")
        if check_finite:
            _native.check_finite(seeds, "labels", _native.current_stream(seeds))
        return seeds.value
    ids = _native.as_input(labels, "labels", ndim=1, dtypes=("int64", "int32"))
    _native.require_same_device(nodes, "features", ids, "labels")
    if ids.shape[0] != n:
        raise ValueError(f"labels: has {ids.shape[0]} entries for {n} nodes")
    host = to_numpy(ids.value).astype(np.int64)
    if host.min(initial=0) < -1:
        raise ValueError("labels: entries must be class ids >= 0 or -1 for unlabelled")
    labelled = np.flatnonzero(host >= 0)
    if labelled.size == 0:
        raise ValueError("labels: no labelled row; give at least one row a class id >= 0")
    classes = int(host.max()) + 1 if n_classes is None else _validate.integer(n_classes, "n_classes", minimum=1)
    if host.max() >= classes:
        raise ValueError(f"labels: class id {int(host.max())} is out of range for n_classes={classes}")
    missing = np.setdiff1d(np.arange(classes), host[labelled])
    if missing.size:
        raise ValueError(f"labels: classes {missing[:10].tolist()} have no labelled row; label at least one row "
                         "of every class (or lower n_classes)")
    dense = np.zeros((n, classes), dtype=dtype)
    dense[labelled, host[labelled]] = 1.0
    xp = _native.namespace(nodes.library)
    if nodes.library == "torch":
        return xp.from_numpy(dense).to(nodes.value.device)
    return xp.asarray(dense)


def _argmax_and_confidence(scores: Any, library: str) -> tuple[Any, Any]:
    """Row argmax (first maximum) and 1 - H(p)/log C with p = normalised max(F, 0)."""
    xp = _native.namespace(library)
    columns = scores.shape[1]
    if library == "torch":
        predicted = scores.argmax(dim=1)
        positive = scores.clamp(min=0).double()
        totals = positive.sum(dim=1, keepdim=True)
    else:
        predicted = scores.argmax(axis=1).astype(np.int64)
        positive = xp.maximum(scores, 0).astype(np.float64)
        totals = positive.sum(axis=1, keepdims=True)
    if columns == 1:
        return predicted, xp.ones_like(totals[:, 0])
    p = positive / xp.where(totals > 0, totals, 1.0)
    logs = xp.log(xp.where(p > 0, p, 1.0))
    entropy = -(p * logs).sum(1)
    confidence = xp.where(totals[:, 0] > 0, 1.0 - entropy / math.log(columns), 0.0)
    return predicted, confidence
