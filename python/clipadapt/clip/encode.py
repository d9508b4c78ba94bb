"""Batched, gradient-free text encoding with a loaded CLIP model."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from clipadapt.clip.models import ClipModel


@torch.no_grad()
def encode_texts(clip: ClipModel, texts: Sequence[str], *, device: str = "cpu", batch_size: int = 256,
                 progress: bool = False) -> torch.Tensor:
    """L2-normalised text embeddings, float32 [len(texts), D] on ``device``, in the order given.

    ``texts`` are tokenised with the model's tokenizer (truncated to its context length) and
    encoded ``batch_size`` at a time, so any number of strings fits in memory.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    texts = list(texts)
    if not texts:
        raise ValueError("texts: give at least one string")
    batches = []
    for start in tqdm(range(0, len(texts), batch_size), desc="encode texts", disable=not progress, leave=False):
        tokens = clip.tokenizer(texts[start:start + batch_size]).to(device)
        batches.append(F.normalize(clip.model.encode_text(tokens).float(), dim=1))
    return torch.cat(batches)
