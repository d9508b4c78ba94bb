"""What hardware the native kernels can use."""
from __future__ import annotations

from typing import Any

from clipadapt import _validate
from clipadapt._native import _core


def cuda_available() -> bool:
    """True when the CUDA kernels were built and at least one CUDA device can run them (a device
    whose architecture the build has no code for is listed by :func:`device_summary` with
    ``supported: False``)."""
    return bool(_core.cuda_compiled()) and any(device["supported"] for device in _core.cuda_devices())


def device_summary() -> dict[str, Any]:
    """Build and device facts: CUDA compiled in, runtime version, devices, CPU threads."""
    runtime = int(_core.cuda_runtime_version())
    return {
        "cuda_compiled": bool(_core.cuda_compiled()),
        "cuda_runtime": f"{runtime // 1000}.{(runtime % 1000) // 10}" if runtime else None,
        "cuda_devices": list(_core.cuda_devices()),
        "cpu_threads": int(_core.get_num_threads()),
        "cpu_kernels": dict(_core.cpu_kernels()),
    }


def set_num_threads(threads: int) -> None:
    """Set the number of OpenMP threads the CPU kernels use (an integer >= 1)."""
    _core.set_num_threads(_validate.integer(threads, "threads", minimum=1))


def get_num_threads() -> int:
    """The number of OpenMP threads the CPU kernels use."""
    return int(_core.get_num_threads())
