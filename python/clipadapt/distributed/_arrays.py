"""Shards in, shards out: numpy arrays and torch tensors read as torch tensors (no copy), and
results given back in the caller's library."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clipadapt import _native


@dataclass(frozen=True)
class Rows:
    """A validated 2-D float shard: ``array`` for clipadapt's checks, ``tensor`` the same
    memory as a torch tensor (for the collectives)."""

    array: _native.Array
    tensor: torch.Tensor

    @property
    def library(self) -> str:
        return self.array.library

    def check_finite(self, name: str) -> None:
        _native.check_finite(self.array, name, _native.current_stream(self.array))


def read_rows(value: Any, name: str) -> Rows:
    """``value`` [n, d] (n may be 0: an empty shard) as :class:`Rows`; numpy or torch only."""
    array = _native.as_input(value, name)
    if array.library not in ("numpy", "torch"):
        raise TypeError(f"{name}: clipadapt.distributed takes numpy arrays or torch tensors, got a {array.library} "
                        f"array; wrap it without a copy (torch.from_dlpack({name}))")
    return Rows(array, as_tensor(array.value))


def as_tensor(value: Any) -> torch.Tensor:
    """A numpy array (read-only memory maps included: nothing here writes to inputs) or a torch
    tensor, as a torch tensor over the same memory."""
    if isinstance(value, torch.Tensor):
        return value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "non-writable array": never written
        return torch.from_numpy(np.asarray(value))


def to_library(tensor: torch.Tensor, library: str) -> Any:
    """``tensor`` as the caller's library gave its input: numpy (host) or torch (as it is)."""
    return tensor.cpu().numpy() if library == "numpy" else tensor


def device_of(*values: Any) -> torch.device:
    """The device the collectives of a call run on: the first CUDA tensor's, else the CPU
    (decided before any check, so that even a call with bad input reaches the handshake)."""
    for value in values:
        if isinstance(value, torch.Tensor) and value.device.type == "cuda":
            return value.device
    return torch.device("cpu")
