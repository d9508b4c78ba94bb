"""Arrays in, arrays out: library and device preserved, contiguous inputs read in place."""
import tracemalloc

import numpy as np
import pytest
import torch

import clipadapt
from clipadapt import _native
from knn_oracle import assert_knn_matches


def test_numpy_in_numpy_out():
    x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    scores, indices = clipadapt.knn(x, x, 5)
    assert isinstance(scores, np.ndarray) and isinstance(indices, np.ndarray)
    assert scores.dtype == np.float32 and indices.dtype == np.int64


def test_torch_in_torch_out():
    x = torch.randn(300, 16)
    scores, indices = clipadapt.knn(x, x, 5)
    assert isinstance(scores, torch.Tensor) and scores.dtype == torch.float32 and scores.device.type == "cpu"
    assert isinstance(indices, torch.Tensor) and indices.dtype == torch.int64


def test_plain_sequences_are_accepted():
    scores, indices = clipadapt.knn([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.1], [0.1, 1.0], [1.0, 1.0]], 1)
    assert isinstance(indices, np.ndarray) and indices[:, 0].tolist() == [0, 1]


def test_contiguous_numpy_input_is_read_in_place():
    x = np.random.default_rng(1).standard_normal((20_000, 128)).astype(np.float32)  # 10 MB
    assert _native.as_input(x, "x").value is x
    tracemalloc.start()
    clipadapt.knn(x[:10], x, 3)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < x.nbytes // 4, f"knn allocated {peak} bytes through numpy for a {x.nbytes}-byte input"


def test_contiguous_torch_input_is_read_in_place():
    x = torch.randn(500, 32).to(torch.bfloat16)
    assert _native.as_input(x, "x").value.data_ptr() == x.data_ptr()


def test_kernel_reads_the_callers_buffer():
    # Writing into the caller's buffer between calls changes the answer: no stale copy is kept.
    x = np.zeros((50, 4), dtype=np.float32)
    x[:, 0] = np.arange(50)
    query = np.ones((1, 4), dtype=np.float32)
    _, first = clipadapt.knn(query, x, 1, metric="ip")
    x[7, 0] = 1000.0
    _, second = clipadapt.knn(query, x, 1, metric="ip")
    assert first[0, 0] == 49 and second[0, 0] == 7


@pytest.mark.parametrize("make_view", [
    lambda a: a[:, ::2],                # strided columns
    lambda a: np.asfortranarray(a),     # column-major
    lambda a: a[::3],                   # strided rows
])
def test_non_contiguous_numpy_inputs(make_view):
    base = np.random.default_rng(2).standard_normal((400, 22)).astype(np.float32)
    view = make_view(base)
    scores, indices = clipadapt.knn(view, view, 4, metric="l2")
    assert_knn_matches(view, view, 4, "l2", scores, indices)


def test_non_contiguous_torch_input():
    base = torch.randn(30, 200)
    view = base.t()  # [200, 30], column-major
    scores, indices = clipadapt.knn(view, view, 3)
    assert isinstance(scores, torch.Tensor)
    assert_knn_matches(view, view, 3, "cosine", scores, indices)


def test_device_mismatch_names_both_arguments():
    cpu = _native.Array(None, "torch", "float32", "cpu", (1, 1))
    gpu = _native.Array(None, "torch", "float32", "cuda:0", (1, 1))
    with pytest.raises(ValueError, match="queries is on cpu but database is on cuda:0"):
        _native.require_same_device(cpu, "queries", gpu, "database")
