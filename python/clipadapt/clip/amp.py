"""Mixed precision on CUDA, one rule for feature extraction and both training loops: ``amp``
("fp16" or "bf16") autocasts the forwards on a CUDA device; on the CPU everything runs in float32."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def effective_amp(amp: str | None, device: str) -> str | None:
    """The autocast dtype name that applies on ``device``: ``amp`` on CUDA, None elsewhere."""
    if amp is not None and amp not in AMP_DTYPES:
        raise ValueError(f"amp: use None, {' or '.join(repr(name) for name in AMP_DTYPES)}, got {amp!r}")
    return amp if str(device).startswith("cuda") else None


def autocast(amp: str | None, device: str) -> AbstractContextManager:
    """``torch.autocast`` with ``amp``'s dtype on a CUDA ``device``; a no-op context otherwise."""
    applied = effective_amp(amp, device)
    return nullcontext() if applied is None else torch.autocast("cuda", dtype=AMP_DTYPES[applied])
