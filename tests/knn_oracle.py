"""Float64 NumPy reference for exact k-NN, with the contract's tie rule (smaller index first)."""
from __future__ import annotations

import numpy as np


def to_float64(array) -> np.ndarray:
    """Exact float64 copy of a numpy/torch array of any float dtype (bf16 included)."""
    if type(array).__module__.startswith("torch"):
        return array.detach().cpu().float().numpy().astype(np.float64)
    return np.asarray(array, dtype=np.float64)


def score_matrix(q: np.ndarray, x: np.ndarray, metric: str) -> np.ndarray:
    """[nq, n] metric values in float64: larger is better except for l2."""
    if metric == "ip":
        return q @ x.T
    if metric == "cosine":
        def unit(a):
            norms = np.linalg.norm(a, axis=1, keepdims=True)
            return np.divide(a, norms, out=np.zeros_like(a), where=norms > 0)
        return unit(q) @ unit(x).T
    return ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)


def knn_oracle(q, x, k: int, metric: str, exclude_self: bool = False):
    """(scores float64 [nq, k], indices int64 [nq, k], full score matrix)."""
    q, x = to_float64(q), to_float64(x)
    full = score_matrix(q, x, metric)
    keys = -full if metric == "l2" else full.copy()
    if exclude_self:
        np.fill_diagonal(keys, -np.inf)
    order = np.empty((q.shape[0], k), dtype=np.int64)
    columns = np.arange(x.shape[0])
    for row in range(q.shape[0]):
        ranked = np.lexsort((columns, -keys[row]))  # key descending, then index ascending
        order[row] = ranked[:k]
    return np.take_along_axis(full, order, 1), order, full


def assert_knn_matches(q, x, k, metric, scores, indices, *, exclude_self=False, rtol=2e-5):
    """Our (scores, indices) equal the oracle's up to float32 rounding: same scores, the same
    neighbours except where two candidates are closer than the tolerance, best first."""
    scores = to_float64(scores)
    indices = np.asarray(indices.cpu() if hasattr(indices, "cpu") else indices)
    want_scores, want_indices, full = knn_oracle(q, x, k, metric, exclude_self)
    tol = rtol * max(1.0, float(np.abs(full).max())) * np.sqrt(q.shape[1])
    assert scores.shape == indices.shape == (want_scores.shape[0], k)
    assert indices.dtype == np.int64
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=tol)
    true_scores = np.take_along_axis(full, indices, 1)
    np.testing.assert_allclose(scores, true_scores, rtol=0, atol=tol)
    sign = 1.0 if metric == "l2" else -1.0
    assert np.all(np.diff(sign * scores, axis=1) >= -tol), "rows must be ordered best first"
    if exclude_self:
        assert not np.any(indices == np.arange(indices.shape[0])[:, None])
    for row in range(indices.shape[0]):
        assert len(set(indices[row].tolist())) == k, "duplicate neighbour"
    # Neighbour sets agree except for candidates within tol of the k-th best score.
    mismatch = indices != want_indices
    if mismatch.any():
        near_tie = np.abs(true_scores - want_scores) <= tol
        assert np.all(near_tie[mismatch]), "a neighbour differs from the oracle beyond rounding"
