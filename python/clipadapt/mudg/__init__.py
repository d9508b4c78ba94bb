"""MUDG (Liao et al., ICLR 2025): multimodal unsupervised domain generalisation.

The pipeline, one module per step: :mod:`~clipadapt.mudg.corpus` (the on-disk image-text source
set), :mod:`~clipadapt.mudg.index` (caption -> image pairing, paired k-means, IVF lists),
:mod:`~clipadapt.mudg.augment` (adaptive text augmentation), :mod:`~clipadapt.mudg.retrieve`
(queries, rank-vote labels, filter, per-class selection) and :mod:`~clipadapt.mudg.train`
(fine-tuning and evaluation). Names are imported on first use, so reading a corpus or building
an index does not load open_clip.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SourceCorpus": "corpus", "CorpusWriter": "corpus", "build_corpus": "corpus", "write_corpus": "corpus",
    "MudgIndex": "index", "build_index": "index", "nearest_images": "index",
    "RankedDescriptors": "augment", "augmented_prompt": "augment", "load_descriptors": "augment",
    "load_ranking": "augment", "rank_descriptors": "augment", "save_ranking": "augment",
    "SelectedImages": "retrieve", "Selection": "retrieve", "build_queries": "retrieve", "load_selection": "retrieve",
    "rank_vote": "retrieve", "retrieve_training_set": "retrieve", "select_per_class": "retrieve",
    "similarity_filter": "retrieve",
    "MUDG": "train", "MUDGConfig": "train", "training_transform": "train",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'clipadapt.mudg' has no attribute {name!r}")
    return getattr(importlib.import_module(f"clipadapt.mudg.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__
