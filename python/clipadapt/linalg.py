"""Exactly rounded matrix products: :func:`exact_matmul`."""
from __future__ import annotations

from typing import Any

from clipadapt import _native
from clipadapt._arrays import check_same_dtype
from clipadapt._native import _core

__all__ = ["exact_matmul"]


def exact_matmul(a: Any, b: Any, *, check_finite: bool = True) -> Any:
    """``a @ b`` with every entry exactly rounded: the same bits on any machine and device.

    Each entry ``out[i, j]`` is the dot product of row i of ``a`` and column j of ``b``
    accumulated in float64 in the library's canonical order (the one every score uses, see
    the contract), from products exact in float64, then rounded once, to nearest even, to the
    inputs' dtype (never through float32, which would round twice). It depends on that row and
    that column alone: not on the BLAS kernel, the thread count, the batching or the device. A
    result too large for the dtype is inf, as the rounding says.

    Args:
        a: [M, D] float32 / float16 / bfloat16 array (numpy, torch, cupy or any DLPack
            producer), on the CPU or a CUDA device.
        b: [D, N] array of the same dtype and device.
        check_finite: screen both inputs for NaN/Inf first (one cheap pass).

    Returns:
        [M, N] array of the inputs' dtype, in the library and on the device of ``a``.

    Raises:
        TypeError: a dtype other than float32/float16/bfloat16, or the two dtypes differ.
        ValueError: an input that is not 2-D, inner dimensions that differ, inputs on different
            devices, or NaN/Inf in an input.

    Cost: on the CPU one float64 GEMM on the inputs widened to float64, in tiles over the
    library's threads (AVX-512 tiles of the library's own where the CPU has AVX-512F, else
    OpenBLAS's dgemm; ``CLIPADAPT_CPU_FP64_TILES=0`` forces dgemm, with the same result) plus, for the rare entries that lie too close to a rounding boundary
    (exact ties), the canonical dot product itself; on the GPU the canonical dot product of
    every entry, a warp each. Memory beyond the output: b transposed in its dtype, and in
    float64 a block of up to 2048 of its columns plus a 128-row tile of ``a`` (and its products
    with 128 columns) per thread.
    """
    left = _native.as_input(a, "a")
    right = _native.as_input(b, "b")
    _native.require_same_device(left, "a", right, "b")
    check_same_dtype(left, "a", right, "b")
    (m, d), (inner, n) = left.shape, right.shape
    if d != inner:
        raise ValueError(f"a and b: inner dimensions differ (a is {list(left.shape)}, b is {list(right.shape)}); "
                         "need a [M, D] and b [D, N]")
    stream = _native.current_stream(left)
    if check_finite:
        _native.check_finite(left, "a", stream)
        _native.check_finite(right, "b", stream)
    out = _native.empty(left, (m, n), left.dtype)
    if 0 in (m, d, n):
        out[...] = 0  # empty dot products are +0
        return out
    _core.exact_matmul_into(_native.capsule(left.value, stream), _native.capsule(right.value, stream),
                            _native.capsule(out, stream), stream)
    return out
