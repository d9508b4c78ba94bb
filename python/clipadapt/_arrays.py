"""Array conversion and the array checks that the primitives and the methods built on them share."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np

from clipadapt import _native

Metric = Literal["cosine", "ip", "l2"]
METRICS: tuple[str, ...] = ("cosine", "ip", "l2")


def to_numpy(array: Any, name: str = "array") -> np.ndarray:
    """A numpy view or host copy of a numpy, torch (any device) or cupy array, or of anything
    ``np.asarray`` reads. A torch bfloat16 tensor becomes float32 (numpy has no bfloat16; the
    widening is exact)."""
    module = type(array).__module__
    if module.startswith("torch"):
        array = array.detach().cpu()
        if str(array.dtype) == "torch.bfloat16":
            array = array.float()
        return array.numpy()
    if module.startswith("cupy"):
        return array.get()
    try:
        return np.asarray(array)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name}: expected a numpy, torch or cupy array, got {type(array).__name__}") from error


def as_library(array: Any, library: str) -> Any:
    """``array`` as an array of ``library`` (``"numpy"``, ``"torch"`` or ``"cupy"``) over the same
    memory on the same device: a CPU array read through numpy or torch, a CUDA one through torch
    or cupy (DLPack)."""
    if _native.library_of(array) == library:
        return array
    if library == "numpy":
        return to_numpy(array)
    if library == "torch":
        import torch

        return torch.from_numpy(array) if isinstance(array, np.ndarray) else torch.from_dlpack(array)
    import cupy

    return cupy.from_dlpack(array)


def check_same_dtype(first: _native.Array, first_name: str, second: _native.Array, second_name: str) -> None:
    """TypeError naming both arguments when their dtypes differ."""
    if first.dtype != second.dtype:
        raise TypeError(f"{first_name} and {second_name}: dtypes differ ({first.dtype} vs {second.dtype}); cast one "
                        "to the other")


def check_row_matrices(first: _native.Array, first_name: str, second: _native.Array, second_name: str) -> None:
    """Two sets of rows to compare: one dtype, at least one row and one column each, one dimension."""
    check_same_dtype(first, first_name, second, second_name)
    for array, name in ((first, first_name), (second, second_name)):
        if 0 in array.shape:
            raise ValueError(f"{name}: empty array of shape {array.shape}; need at least one row and one column")
    if first.shape[1] != second.shape[1]:
        raise ValueError(f"{first_name} and {second_name}: feature dimensions differ ({first.shape[1]} vs "
                         f"{second.shape[1]})")
