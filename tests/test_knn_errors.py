"""Bad input raises a clear Python exception naming the argument; nothing crashes."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import clipadapt
from knn_oracle import assert_knn_matches

X = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)


@pytest.mark.parametrize("call,error,message", [
    (lambda: clipadapt.knn(X.astype(np.float64), X, 2), TypeError, "queries: dtype float64"),
    (lambda: clipadapt.knn(X, X.astype(np.int32), 2), TypeError, "database: dtype int32"),
    (lambda: clipadapt.knn(X, X.astype(np.float16), 2), TypeError, "dtypes differ"),
    (lambda: clipadapt.knn(torch.from_numpy(X).int(), X, 2), TypeError, "queries: dtype int32"),
    (lambda: clipadapt.knn(X[0], X, 2), ValueError, "queries: expected a 2-D"),
    (lambda: clipadapt.knn(X, X[None], 2), ValueError, "database: expected a 2-D"),
    (lambda: clipadapt.knn(X, X[:, :3], 2), ValueError, "feature dimensions differ"),
    (lambda: clipadapt.knn(X[:0], X, 2), ValueError, "queries: empty"),
    (lambda: clipadapt.knn(X, X[:, :0], 2), ValueError, "database: empty"),
    (lambda: clipadapt.knn(X, X, 0), ValueError, "k: must be an integer >= 1"),
    (lambda: clipadapt.knn(X, X, 21), ValueError, "k: 21 exceeds the 20"),
    (lambda: clipadapt.knn(X, X, 20, exclude_self=True), ValueError, "excluding self"),
    (lambda: clipadapt.knn(X, X, 2.5), TypeError, "k: must be an integer"),
    (lambda: clipadapt.knn(X[:5], X, 2, exclude_self=True), ValueError, "exclude_self"),
    (lambda: clipadapt.knn(X, X, 2, metric="euclid"), ValueError, "metric: unknown"),
    (lambda: clipadapt.knn(X, X, 2, compute="fp8"), ValueError, "compute: unknown"),
    (lambda: clipadapt.knn("abc", X, 2), TypeError, "queries"),
    (lambda: clipadapt.knn_graph(X, 20), ValueError, "k: 20 exceeds"),
])
def test_bad_input_raises(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_non_finite_values_are_reported(bad, dtype):
    x = X.astype(dtype)
    x[3, 1] = bad
    with pytest.raises(ValueError, match="database: contains NaN or Inf.*check_finite=False"):
        clipadapt.knn(X.astype(dtype)[:2], x, 2)
    with pytest.raises(ValueError, match="queries: contains NaN or Inf"):
        clipadapt.knn(x, X.astype(dtype), 2)


def test_bfloat16_nan_is_reported():
    x = torch.from_numpy(X).to(torch.bfloat16)
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="queries: contains NaN"):
        clipadapt.knn_graph(x, 3)


def test_unchecked_nan_never_selected_and_never_crashes():
    x = X.copy()
    x[5] = np.nan
    scores, indices = clipadapt.knn(x, x, 19, metric="ip", check_finite=False)
    assert not np.any(indices[np.arange(20) != 5] == 5), "a NaN row was selected"
    assert np.all(indices >= -1) and np.all(indices < 20)
    graph = clipadapt.knn_graph(x, 3, check_finite=False)
    with pytest.raises(ValueError, match="empty neighbour slots"):
        graph.to_csr()


@settings(max_examples=150, deadline=None)
@given(
    nq=st.integers(0, 30), n=st.integers(0, 70), d=st.integers(0, 9), k=st.integers(-1, 75),
    metric=st.sampled_from(["cosine", "ip", "l2"]), dtype=st.sampled_from(["float32", "float16", "bfloat16"]),
    exclude_self=st.booleans(), poison=st.sampled_from([None, float("nan"), float("inf")]),
    seed=st.integers(0, 2**31 - 1),
)
def test_any_input_either_raises_cleanly_or_matches_the_oracle(nq, n, d, k, metric, dtype, exclude_self,
                                                               poison, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator).to(getattr(torch, dtype))
    q = x if exclude_self else torch.randn(nq, d, generator=generator).to(getattr(torch, dtype))
    if poison is not None and x.numel():
        x.view(-1)[seed % x.numel()] = poison
    try:
        scores, indices = clipadapt.knn(q, x, k, metric=metric, exclude_self=exclude_self)
    except (ValueError, TypeError):
        return
    assert poison is None or x.numel() == 0
    assert_knn_matches(q, x, k, metric, scores, indices, exclude_self=exclude_self, rtol=1e-3)
