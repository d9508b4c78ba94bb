"""Per-dataset settings of the released MUDG runs: descriptors per class in the retrieval
queries and images kept per class (``run_retrieve.sh DATASET m n k``), and fine-tuning
iterations (``run_b16.sh`` / ``run_l14.sh DATASET iterations m seed``), as the released README
lists them. Large label sets (ImageNet and its variants, Stanford Cars, SUN397, DomainNet) use 16
descriptors and 96 images per class, the others 64 and 384.

Keys are clipadapt's dataset keys where it has one (``imagenet``, ``standford_cars``, ...);
Office-Home's four domains share ``office_home``. The learning rate and batch size depend on the
model, not the dataset: 6.4e-4 at 128 for ViT-B/16, 1.6e-4 at 64 for ViT-L/14.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """Attributes:
        n_descriptors: ranked descriptors per class in the retrieval queries (m).
        k_sel: images kept per class by the selection k-means (k).
        iterations: fine-tuning iterations.
    """

    n_descriptors: int
    k_sel: int
    iterations: int


_LARGE, _SMALL = (16, 96), (64, 384)

PRESETS: dict[str, Preset] = {name: Preset(*sizes, iterations) for name, sizes, iterations in (
    ("imagenet", _LARGE, 300),
    ("caltech101", _SMALL, 100),
    ("oxford_pets", _SMALL, 200),
    ("standford_cars", _LARGE, 1000),
    ("flowers102", _SMALL, 200),
    ("food101", _SMALL, 100),
    ("fgvc", _SMALL, 1000),
    ("sun397", _LARGE, 300),
    ("dtd", _SMALL, 200),
    ("eurosat", _SMALL, 200),
    ("ucf101", _SMALL, 200),
    ("imagenet_v2", _LARGE, 200),
    ("imagenet_sketch", _LARGE, 200),
    ("imagenet_a", _LARGE, 200),
    ("imagenet_r", _LARGE, 200),
    ("domainnet", _LARGE, 200),
    ("office_home", _SMALL, 200),
    ("pacs", _SMALL, 100),
    ("vlcs", _SMALL, 50),
    ("terra_incognita", _SMALL, 100),
)}
"""The released settings by dataset key."""

DEFAULT = Preset(n_descriptors=16, k_sel=96, iterations=200)
"""Without a preset: the large-label-set retrieval settings and the training default."""

ALIASES = {"stanford_cars": "standford_cars", "office_ar": "office_home", "office_cl": "office_home",
           "office_pr": "office_home", "office_rw": "office_home"}


def preset_key(name: str) -> str | None:
    """The :data:`PRESETS` key of a dataset name (case and "-" / "_" not significant), or None."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    return key if key in PRESETS else None


def get_preset(name: str) -> Preset:
    """The preset of dataset ``name``; ValueError naming the known ones for any other name."""
    key = preset_key(name)
    if key is None:
        raise ValueError(f"preset: no released settings for {name!r}; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[key]


def resolve(preset: str | None, **given: int | None) -> dict[str, int]:
    """Each of ``given`` (a :class:`Preset` field) as given, or, where None, the value of
    ``preset`` (when not None), else of :data:`DEFAULT`."""
    source = get_preset(preset) if preset is not None else DEFAULT
    return {name: getattr(source, name) if value is None else value for name, value in given.items()}
