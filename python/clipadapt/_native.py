"""Loads the compiled extension and moves arrays in and out of it through DLPack.

Every public primitive goes through :func:`as_input` (validate, make contiguous once) and
:func:`empty_like_library` (allocate outputs in the caller's array library and device), then
hands DLPack capsules to ``clipadapt._core``. Contiguous inputs of a supported dtype are
passed through without a copy: the kernels read the caller's buffer.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Any

import numpy as np


def _load_openblas() -> None:
    # The CPU kernels link scipy-openblas32's shared library; load it from the installed
    # package first so the extension finds it wherever site-packages is.
    import scipy_openblas32

    lib_dir = scipy_openblas32.get_lib_dir()
    name = scipy_openblas32.get_library(fullname=True)
    ctypes.CDLL(os.path.join(lib_dir, name), mode=ctypes.RTLD_GLOBAL)


_load_openblas()
from clipadapt import _core  # noqa: E402

FLOAT_DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Array:
    """A validated input: the original object, its library, dtype name and device."""

    value: Any
    library: str  # "numpy", "torch" or "cupy"
    dtype: str
    device: str  # "cpu" or "cuda:N"
    shape: tuple[int, ...]

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def library_of(value: Any) -> str:
    """``"numpy"``, ``"torch"``, ``"cupy"`` or ``"other"``: the library of an array."""
    module = type(value).__module__.split(".")[0]
    if module in ("numpy", "torch", "cupy"):
        return module
    return "other"


def _dtype_name(value: Any, library: str) -> str:
    if library == "torch":
        return str(value.dtype).removeprefix("torch.")
    return str(value.dtype)


def _device_of(value: Any, library: str) -> str:
    if library == "torch":
        return "cpu" if value.device.type == "cpu" else f"cuda:{value.device.index or 0}"
    if library == "cupy":
        return f"cuda:{value.device.id}"
    return "cpu"


def _is_c_contiguous(value: Any, library: str) -> bool:
    if library == "torch":
        return bool(value.is_contiguous())
    return bool(value.flags.c_contiguous)


def _contiguous(value: Any, library: str) -> Any:
    if library == "torch":
        return value.contiguous()
    if library == "cupy":
        import cupy

        return cupy.ascontiguousarray(value)
    return np.ascontiguousarray(value)


def as_input(value: Any, name: str, *, ndim: int = 2, dtypes: tuple[str, ...] = FLOAT_DTYPES) -> Array:
    """Validates one array argument and returns it C-contiguous (copied only if it was not).

    Plain sequences become float32 numpy arrays; objects exporting ``__dlpack__`` from other
    libraries are viewed as numpy (CPU only).
    """
    library = library_of(value)
    if library == "other":
        if hasattr(value, "__dlpack__"):
            try:
                value = np.from_dlpack(value)
            except (RuntimeError, BufferError, TypeError) as error:
                raise ValueError(f"{name}: cannot read this array through DLPack ({error}); "
                                 "pass a numpy, torch or cupy array") from error
        else:
            try:
                value = np.asarray(value, dtype=np.float32 if "float32" in dtypes else None)
            except (TypeError, ValueError) as error:
                raise TypeError(f"{name}: expected an array, got {type(value).__name__}") from error
        library = "numpy"
    if library == "torch":
        value = _readable_tensor(value, name)
    dtype = _dtype_name(value, library)
    if dtype not in dtypes:
        raise TypeError(f"{name}: dtype {dtype} is not supported; use one of {', '.join(dtypes)} "
                        "(cast with .astype / .to)")
    shape = tuple(int(s) for s in value.shape)
    if len(shape) != ndim:
        expected = "[rows, d]" if ndim == 2 else "[rows]"
        raise ValueError(f"{name}: expected a {ndim}-D array {expected}, got shape {shape}")
    if not _is_c_contiguous(value, library):
        value = _contiguous(value, library)  # documented cost: one copy
    return Array(value, library, dtype, _device_of(value, library), shape)


def _readable_tensor(tensor: Any, name: str) -> Any:
    """A torch tensor the kernels can read: dense, on the CPU or a CUDA device, and detached
    (the kernels compute no gradients, so a tensor that requires one is read as its values)."""
    import torch

    if tensor.layout is not torch.strided:
        raise TypeError(f"{name}: is a sparse tensor ({tensor.layout}); pass a dense one (.to_dense())")
    if tensor.device.type == "meta":
        raise ValueError(f"{name}: is a meta tensor, which has a shape but no values; pass a tensor with data "
                         "on the CPU or a CUDA device")
    if tensor.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{name}: is on {tensor.device}; clipadapt runs on the CPU and CUDA devices, move it "
                         "with .cpu() or .cuda()")
    return tensor.detach() if tensor.requires_grad else tensor


def require_same_device(first: Array, first_name: str, other: Array, other_name: str) -> None:
    if first.device != other.device:
        raise ValueError(f"{first_name} is on {first.device} but {other_name} is on {other.device}; "
                         "move both to the same device")


def current_stream(array: Array) -> int:
    """The caller's current CUDA stream for the array's device (0 on the CPU)."""
    if not array.is_cuda:
        return 0
    if array.library == "torch":
        import torch

        return int(torch.cuda.current_stream(array.value.device).cuda_stream)
    if array.library == "cupy":
        import cupy

        with cupy.cuda.Device(array.value.device.id):
            return int(cupy.cuda.get_current_stream().ptr)
    return 0


def capsule(array: Any, stream: int = 0) -> Any:
    """A DLPack capsule of an array, versioned where the producer supports it."""
    kwargs: dict[str, Any] = {}
    device_type = array.__dlpack_device__()[0]
    if device_type != 1:  # not the CPU: tell the producer which stream we will use
        # DLPack reserves 0; the legacy default stream (handle 0) is spelled 1.
        kwargs["stream"] = stream if stream != 0 else 1
    try:
        return array.__dlpack__(max_version=(1, 0), **kwargs)
    except TypeError:
        return array.__dlpack__(**kwargs)


def empty(like: Array, shape: tuple[int, ...], dtype: str) -> Any:
    """An uninitialised array in the library and on the device of ``like``."""
    if like.library == "torch":
        import torch

        return torch.empty(shape, dtype=getattr(torch, dtype), device=like.value.device)
    if like.library == "cupy":
        import cupy

        with cupy.cuda.Device(like.value.device.id):
            return cupy.empty(shape, dtype=dtype)
    return np.empty(shape, dtype=dtype)


def check_finite(array: Array, name: str, stream: int, *, skippable: bool = True) -> None:
    """ValueError when the 2-D ``array`` holds a NaN or an Inf; ``skippable``: the caller has a
    ``check_finite`` argument, which the message then mentions."""
    if 0 not in array.shape and _core.has_nonfinite(capsule(array.value, stream), stream):
        raise ValueError(f"{name}: contains NaN or Inf; clean the input (e.g. drop or impute those rows)"
                         + (" or pass check_finite=False to skip this check" if skippable else ""))


def namespace(library: str) -> Any:
    """The array module of a library name (numpy, torch or cupy)."""
    if library == "torch":
        import torch

        return torch
    if library == "cupy":
        import cupy

        return cupy
    return np


def astype(array: Any, library: str, dtype: str, *, copy: bool = False) -> Any:
    """``array`` cast to ``dtype`` within its own library (a copy when the dtype changes)."""
    if library == "torch":
        import torch

        converted = array.to(getattr(torch, dtype))
        return converted.clone() if copy and converted is array else converted
    return array.astype(dtype, copy=copy)


def normalize_rows(array: Any, library: str) -> Any:
    """Rows scaled to unit L2 norm (zero rows stay zero), in the array's library."""
    xp = namespace(library)
    if library == "torch":
        norms = array.norm(dim=1, keepdim=True)
    else:
        norms = xp.linalg.norm(array, axis=1, keepdims=True)
    return array / xp.where(norms > 0, norms, 1.0)
