"""Run-directory helpers shared by the training loops (ReCLIP, MUDG)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from clipadapt._files import atomic_path

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(state: dict[str, Any], out: Path) -> None:
    """Write ``state`` to ``out/checkpoint.pt`` atomically: an interrupted save leaves the
    previous checkpoint intact."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / CHECKPOINT) as partial:
        torch.save(state, partial)
