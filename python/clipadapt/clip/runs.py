"""Run-directory helpers shared by the training loops (ReCLIP, MUDG)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(state: dict[str, Any], out: Path) -> None:
    """Write ``state`` to ``out/checkpoint.pt`` atomically: an interrupted save leaves the
    previous checkpoint intact."""
    out.mkdir(parents=True, exist_ok=True)
    partial = out / (CHECKPOINT + ".partial")
    torch.save(state, partial)
    partial.replace(out / CHECKPOINT)
