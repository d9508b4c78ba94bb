"""Synthetic CLIP-like embeddings for benchmarks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Modality = Literal["image", "text"]
_MODALITIES: tuple[str, ...] = ("image", "text")
# Rows generated per step: bounds the float32 temporaries to ~64 MB at d=256, ~200 MB at d=768.
_CHUNK_ROWS = 65_536
# Stream ids of synthetic_pairs, after synthetic_clip's 0 (shared), 1 (image) and 2 (text).
_ITEM_STREAM, _IMAGE_STREAM, _CAPTION_STREAM = 3, 4, 5


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
    _check_sizes(n, d, n_classes)
    if modality not in _MODALITIES:
        raise ValueError(f"modality: unknown modality {modality!r}; use 'image' or 'text'")
    directions, offset = _class_structure(n_classes, d, gap, seed)
    samples = np.random.default_rng([seed, 1 + _MODALITIES.index(modality)])
    labels = samples.integers(0, n_classes, size=n, dtype=np.int64)
    x = np.empty((n, d), dtype=np.float32)
    for rows in _chunks(n):
        _perturbed_unit_rows(directions[labels[rows]], noise, samples, offset if modality == "image" else None,
                             out=x[rows])
    return x, labels


@dataclass(frozen=True)
class PairedClip:
    """Image and caption embeddings of the same items: row i of each describes item i.

    Attributes:
        images: float32 [n, d] unit rows.
        captions: float32 [n, d] unit rows.
        labels: int64 [n] class of each item.
    """

    images: np.ndarray
    captions: np.ndarray
    labels: np.ndarray


def synthetic_pairs(n: int, d: int, *, n_classes: int = 100, gap: float = 0.3, noise: float = 0.6, seed: int = 0,
                    split: int = 0) -> PairedClip:
    """Paired CLIP-like image and caption embeddings with a modality gap.

    Item i has its own direction ``z_i = normalise(direction[labels[i]] + noise * g / sqrt(d))``
    (a text row of :func:`synthetic_clip`'s class structure); its image and its caption are two
    independent noisy views of it, the image also shifted by the common gap vector:

        image_i   = normalise(z_i + offset + noise * g' / sqrt(d))
        caption_i = normalise(z_i + noise * g'' / sqrt(d))

    with g, g', g'' independent standard gaussian vectors. ``direction`` and ``offset`` (a unit
    vector times ``gap``) are :func:`synthetic_clip`'s for the same ``seed``, so both describe
    the same classes and the same gap. The defaults are :func:`synthetic_clip`'s, not tuned.

    Args:
        n: number of items, >= 1.
        d: embedding dimension, >= 1.
        n_classes: number of class directions, >= 1.
        gap: length of the image modality offset.
        noise: length (about) of each gaussian perturbation: item around its class, and image
            and caption around their item.
        seed: makes the result deterministic.
        split: items of different splits are independent draws from the same classes and gap
            (e.g. 0 for a database, 1 for held-out queries).

    Returns:
        A :class:`PairedClip` of n items.
    """
    _check_sizes(n, d, n_classes)
    directions, offset = _class_structure(n_classes, d, gap, seed)
    item_samples, image_samples, caption_samples = (np.random.default_rng([seed, stream, split])
                                                    for stream in (_ITEM_STREAM, _IMAGE_STREAM, _CAPTION_STREAM))
    labels = item_samples.integers(0, n_classes, size=n, dtype=np.int64)
    images = np.empty((n, d), dtype=np.float32)
    captions = np.empty((n, d), dtype=np.float32)
    for rows in _chunks(n):
        items = _perturbed_unit_rows(directions[labels[rows]], noise, item_samples)
        _perturbed_unit_rows(items, noise, image_samples, offset, out=images[rows])
        _perturbed_unit_rows(items, noise, caption_samples, out=captions[rows])
    return PairedClip(images=images, captions=captions, labels=labels)


def _check_sizes(n: int, d: int, n_classes: int) -> None:
    if min(n, d, n_classes) < 1:
        raise ValueError(f"n, d and n_classes must be >= 1, got n={n}, d={d}, n_classes={n_classes}")


def _class_structure(n_classes: int, d: int, gap: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The unit class directions float32 [n_classes, d] and the image offset float32 [d] of ``seed``."""
    shared = np.random.default_rng([seed, 0])
    directions = _normalise_rows(shared.standard_normal((n_classes, d), dtype=np.float32))
    offset = _normalise_rows(shared.standard_normal((1, d), dtype=np.float32))[0] * np.float32(gap)
    return directions, offset


def _chunks(n: int) -> list[slice]:
    """Consecutive row slices of at most :data:`_CHUNK_ROWS` rows covering ``range(n)``."""
    return [slice(start, min(n, start + _CHUNK_ROWS)) for start in range(0, n, _CHUNK_ROWS)]


def _perturbed_unit_rows(centres: np.ndarray, noise: float, samples: np.random.Generator,
                         offset: np.ndarray | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
    """``normalise(centres + noise * g / sqrt(d) [+ offset])`` row by row, g drawn from ``samples``,
    written to ``out`` (float32, same shape as ``centres``; new when None) and returned."""
    rows = np.empty_like(centres) if out is None else out
    samples.standard_normal(rows.shape, dtype=np.float32, out=rows)
    rows *= np.float32(noise / np.sqrt(centres.shape[1]))
    rows += centres
    if offset is not None:
        rows += offset
    return _normalise_rows(rows)


def _normalise_rows(rows: np.ndarray) -> np.ndarray:
    """Scale ``rows`` (float32) to unit L2 norm in place and return them."""
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows
