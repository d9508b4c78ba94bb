"""Synthetic CLIP-like embeddings for benchmarks."""
from __future__ import annotations

from typing import Literal

import numpy as np

Modality = Literal["image", "text"]
_MODALITIES: tuple[str, ...] = ("image", "text")
# Rows generated per step: bounds the float32 temporaries to ~64 MB at d=256, ~200 MB at d=768.
_CHUNK_ROWS = 65_536


def synthetic_clip(n: int, d: int, *, n_classes: int = 100, modality: Modality = "image", gap: float = 0.3,
                   noise: float = 0.6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """CLIP-like embeddings: unit rows clustered around class directions, offset by modality.

    Row i is ``normalise(direction[labels[i]] + noise * g / sqrt(d) + offset)`` with g a standard
    gaussian vector, so the perturbation has norm ~``noise`` against the unit class direction.
    Image rows share one ``offset`` (a random unit vector times ``gap``), the "modality gap" of
    CLIP; text rows have none.

    The class directions and the offset depend on ``seed`` only, so an ``"image"`` and a
    ``"text"`` set from the same seed describe the same classes; labels and noise are drawn
    from a stream of their own per modality. Rows are made in float32 chunks, so n = 1e6,
    d = 768 needs little beyond the 3 GB result.

    Args:
        n: number of rows, >= 1.
        d: embedding dimension, >= 1.
        n_classes: number of class directions (random unit vectors), >= 1.
        modality: ``"image"`` (with the modality offset) or ``"text"`` (without).
        gap: length of the image modality offset.
        noise: length (about) of each row's gaussian perturbation.
        seed: makes the result deterministic.

    Returns:
        ``(x, labels)``: float32 [n, d] with unit-norm rows and int64 [n] class ids in
        ``[0, n_classes)``.
    """
    if min(n, d, n_classes) < 1:
        raise ValueError(f"n, d and n_classes must be >= 1, got n={n}, d={d}, n_classes={n_classes}")
    if modality not in _MODALITIES:
        raise ValueError(f"modality: unknown modality {modality!r}; use 'image' or 'text'")
    shared = np.random.default_rng([seed, 0])
    directions = _normalise_rows(shared.standard_normal((n_classes, d), dtype=np.float32))
    offset = _normalise_rows(shared.standard_normal((1, d), dtype=np.float32))[0] * np.float32(gap)
    samples = np.random.default_rng([seed, 1 + _MODALITIES.index(modality)])
    labels = samples.integers(0, n_classes, size=n, dtype=np.int64)
    x = np.empty((n, d), dtype=np.float32)
    noise_scale = np.float32(noise / np.sqrt(d))
    for start in range(0, n, _CHUNK_ROWS):
        chunk = x[start:start + _CHUNK_ROWS]
        samples.standard_normal(chunk.shape, dtype=np.float32, out=chunk)
        chunk *= noise_scale
        chunk += directions[labels[start:start + _CHUNK_ROWS]]
        if modality == "image":
            chunk += offset
        _normalise_rows(chunk)
    return x, labels


def _normalise_rows(rows: np.ndarray) -> np.ndarray:
    """Scale ``rows`` (float32) to unit L2 norm in place and return them."""
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows
