"""Helpers shared by the training loops (ReCLIP, MUDG): their prompts argument and run directories."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipadapt._files import atomic_path
from clipadapt.clip.prompts import DatasetPrompts

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(state: dict[str, Any], out: Path) -> None:
    """Write ``state`` to ``out/checkpoint.pt`` atomically: an interrupted save leaves the
    previous checkpoint intact."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / CHECKPOINT) as partial:
        torch.save(state, partial)


def check_prompts(prompts: Any) -> DatasetPrompts:
    """``prompts`` when it is a :class:`DatasetPrompts` of at least two classes, as the methods take it."""
    if not isinstance(prompts, DatasetPrompts):
        raise TypeError(f"prompts: expected a clipadapt.clip.DatasetPrompts (get_prompts(dataset), from_folder(...) "
                        f"or DatasetPrompts(name, classnames, templates)), got {type(prompts).__name__}")
    if prompts.num_classes < 2:
        raise ValueError(f"prompts: need at least 2 classes, got {prompts.num_classes}")
    return prompts


def plain_numbers(config: Any) -> None:
    """Replace the numpy scalars among a config dataclass's fields by the Python numbers they
    equal: torch (DataLoader's batch_size) and JSON (result.json) take only those."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, np.generic):
            setattr(config, field.name, value.item())


def write_result(out: Path, result: dict[str, Any]) -> None:
    """Write a run's ``result.json`` (indented) to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2))
