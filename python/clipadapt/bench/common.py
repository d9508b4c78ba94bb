"""Helpers every benchmark shares: timing, the reference matmul rate, machine facts, reports."""
from __future__ import annotations

import importlib
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from clipadapt.device import cuda_available, device_summary

# The matmul each device's "fraction of the measured mm rate" column is relative to.
_REFERENCE_MM = {"cpu": {"size": 4096, "dtype": "float32", "iterations": 1},
                 "cuda": {"size": 8192, "dtype": "bfloat16", "iterations": 10}}
_LIBRARIES = ("clipadapt", "numpy", "torch", "faiss", "sklearn", "cupy")


class MethodUnavailable(Exception):
    """A method cannot run on this machine or with these settings; the message says why."""


@dataclass(frozen=True)
class Skipped:
    """A method left out, and why (``device``: where it would have run, when that matters)."""

    name: str
    reason: str
    device: str | None = None


def import_or_unavailable(module: str, hint: str) -> ModuleType:
    """``module`` imported, or :class:`MethodUnavailable` saying it is not installed (and ``hint``)."""
    try:
        return importlib.import_module(module)
    except ImportError as missing:
        raise MethodUnavailable(f"{module} is not installed ({hint})") from missing


def require_clipadapt_on(device: str) -> None:
    """Raises :class:`MethodUnavailable` when clipadapt cannot run on ``device`` (on CUDA it
    needs its CUDA build, a visible device, and torch to hold the rows)."""
    if device != "cuda":
        return
    if not cuda_available():
        raise MethodUnavailable("no usable CUDA device (clipadapt built without CUDA, or none visible)")
    import_or_unavailable("torch", "CUDA rows are passed as torch tensors")


def log(message: str) -> None:
    """One progress line on stderr (stdout is kept for the result tables)."""
    print(f"[clipadapt bench] {message}", file=sys.stderr, flush=True)


def time_call(fn: Callable[[], Any], *, synchronize: Callable[[], None], repeats: int = 1) -> tuple[list[float], Any]:
    """Wall-clock seconds of each of ``repeats`` calls of ``fn`` (each ended by ``synchronize()``)
    and what the last call returned."""
    seconds, result = [], None
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        result = fn()
        synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def no_sync() -> None:
    """``synchronize`` for work that is finished when the call returns (CPU libraries)."""


def cuda_sync() -> None:
    """``synchronize`` for work queued on the current CUDA device by torch (or clipadapt via torch)."""
    import torch

    torch.cuda.synchronize()


def synchronizer(device: str) -> Callable[[], None]:
    """The ``synchronize`` of work on ``device``: :func:`cuda_sync` on ``"cuda"``, else :func:`no_sync`."""
    return cuda_sync if device == "cuda" else no_sync


def to_torch(array: Any, *, device: str, dtype: str | None = None) -> Any:
    """``array`` (numpy, or torch on any device) as a torch tensor on ``device``, cast to ``dtype`` if given."""
    import torch

    return torch.as_tensor(array, device=device, dtype=None if dtype is None else getattr(torch, dtype))


def on_device(array: Any, device: str) -> Any:
    """Host rows as clipadapt takes them on ``device``: as they are on the CPU, else a torch tensor there."""
    return array if device == "cpu" else to_torch(array, device=device)


def reference_mm_rate(device: str, threads: int, dtype: str | None = None) -> dict[str, Any]:
    """Measured GFLOP/s of one square ``torch.mm``: float32 4096^3 on the CPU (``threads``
    threads), bfloat16 8192^3 on CUDA, or the same sizes in ``dtype`` when given; the
    yardstick for a kernel's fraction of the machine.

    Raises:
        ImportError: torch is not installed.
        RuntimeError: ``device`` is ``"cuda"`` and torch sees no CUDA device.
    """
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device")
    spec = _REFERENCE_MM[device]
    size, iterations, dtype = spec["size"], spec["iterations"], dtype or spec["dtype"]
    torch.set_num_threads(threads)
    a = torch.randn(size, size, device=device).to(getattr(torch, dtype))
    b = torch.randn(size, size, device=device).to(a.dtype)
    torch.mm(a, b)  # warm-up: library handles, thread pool, clocks
    (seconds,), _ = time_call(lambda: [torch.mm(a, b) for _ in range(iterations)],
                              synchronize=synchronizer(device))
    return {"op": "torch.mm", "dtype": dtype, "shape": [size, size, size], "device": device,
            "threads": threads if device == "cpu" else None,
            "gflops": 2.0 * size**3 * iterations / seconds / 1e9}


def copy_bandwidth(threads: int, megabytes: int = 512) -> dict[str, Any]:
    """Measured memory bandwidth of a STREAM-like copy: ``b[:] = a`` over two float32 arrays of
    ``megabytes`` each (far beyond any cache), by torch's parallel copy on ``threads`` threads
    (numpy's copy is single-threaded); bytes read plus bytes written per second, the best of
    five. ``{"unavailable": why}`` without torch."""
    try:
        import torch
    except ImportError as why:
        return {"unavailable": str(why)}
    torch.set_num_threads(threads)
    elements = megabytes * (1 << 20) // 4
    source, target = torch.ones(elements), torch.empty(elements)
    target.copy_(source)  # warm-up: pages touched, threads started
    best = min(time_call(lambda: target.copy_(source), synchronize=no_sync, repeats=5)[0])
    return {"op": "torch copy_ float32", "megabytes": megabytes, "threads": threads,
            "gbytes_per_second": 2 * elements * 4 / best / 1e9}


def measure_reference_mm(benchmark: str, device: str, threads: int, dtype: str | None = None) -> dict[str, Any]:
    """:func:`reference_mm_rate`, logged under ``benchmark``'s name; ``{"unavailable": why}``
    when it cannot be measured (no torch, or no CUDA device for torch)."""
    log(f"{benchmark}: measuring the reference torch.mm rate on {device}")
    try:
        return reference_mm_rate(device, threads, dtype)
    except (ImportError, RuntimeError) as why:
        return {"unavailable": str(why)}


def describe_reference_mm(reference: dict[str, Any]) -> str:
    """A legend line's account of a :func:`measure_reference_mm` result."""
    if "gflops" not in reference:
        return f"reference torch.mm rate unavailable ({reference['unavailable']})"
    size = "x".join(map(str, reference["shape"]))
    threads = f", {reference['threads']} threads" if reference["threads"] else ""
    return f"measured {reference['dtype']} torch.mm {size}{threads}: {reference['gflops']:.1f} GFLOP/s"


def recall_at_k(found: Any, truth: Any) -> float:
    """Mean over rows of |found ∩ truth| / k, for id arrays [rows, k] (numpy)."""
    hits = sum(len(np.intersect1d(mine, true)) for mine, true in zip(found, truth))
    return hits / truth.size


def machine_info(threads: int) -> dict[str, Any]:
    """The facts a result needs to be compared: build, devices, CPU, OS, library versions."""
    return {"clipadapt": device_summary(), "platform": platform.platform(), "python": platform.python_version(),
            "cpu_model": _cpu_model(), "threads": threads, "load_average_1min": _load_average(),
            "libraries": {name: _module_version(name) for name in _LIBRARIES}}


def _load_average() -> float | None:
    """The 1-minute load average: other work on the machine skews every timing."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _cpu_model() -> str | None:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or None
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return models[0] if models else platform.processor() or None


def _module_version(name: str) -> str | None:
    try:
        return str(getattr(importlib.import_module(name), "__version__", "unknown"))
    except ImportError:
        return None


def optional_number(value: float | None, spec: str = ".2f") -> str:
    """``value`` formatted with ``spec`` for a table cell, or ``-`` when it is None."""
    return "-" if value is None else format(value, spec)


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def invoking_command() -> str:
    """The command line this process was started with, shell-quoted."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON to ``path`` (parent folders created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> str:
    """A plain-text table with a rule under the header; ``align`` holds ``l`` or ``r`` per column."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        padded = (cell.ljust(width) if side == "l" else cell.rjust(width)
                  for cell, width, side in zip(cells, widths, align))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in rows)])


def publish_result(benchmark: str, parameters: dict[str, Any], threads: int, sections: dict[str, Any],
                   format_table: Callable[[dict[str, Any]], str], json_path: str | Path | None) -> dict[str, Any]:
    """Assemble a benchmark's result (name, date, command, parameters, machine, then
    ``sections``), print its table and write it as JSON when ``json_path`` is given."""
    result = {"benchmark": benchmark, "date": utc_now(), "command": invoking_command(), "parameters": parameters,
              "machine": machine_info(threads), **sections}
    print(format_table(result))
    if json_path is not None:
        log(f"{benchmark}: wrote {write_json(json_path, result)}")
    return result
