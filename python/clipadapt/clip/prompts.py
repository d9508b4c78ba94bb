"""Class names and CLIP prompt templates for the ReCLIP datasets (source-free adaptation of CLIP).

Each dataset is a :class:`DatasetPrompts`: its class names, in the label order of the dataset's standard loader
(torchvision's dataset class, or the sorted folder names of an image folder), and its prompt templates, where "{}"
stands for the class name (CLIP's style: ``template.format(classname)``). :meth:`DatasetPrompts.prompts` gives the
prompts of one class, to be averaged into a template-ensemble classifier as in CLIP's zero-shot evaluation;
:meth:`DatasetPrompts.first_prompts` gives one prompt per class from ``templates[0]`` (ReCLIP-T's single-template
prompts). A class may have synonyms (FER2013's "happy" / "smiling"): its prompts then ensemble every template with
every synonym.

The tables are package data, ``prompts.json`` beside this module; sources (the note of each table says what
differs between them):

* CLIP: ``data/prompts.md`` of github.com/openai/CLIP (class names and templates of the paper's zero-shot
  evaluation) and, for ImageNet, its ``notebooks/Prompt_Engineering_for_ImageNet.ipynb``.
* ReCLIP: ``prompts/clip_prompts`` and ``datasets.py`` of github.com/michiganleon/ReCLIP_WACV (dataset keys,
  AID / Office-31 / Office-Home class lists, label orders).

Two variants (:data:`VARIANTS`): ``"released"`` (:data:`DATASETS`, the default) holds ReCLIP's names and templates;
``"clip"`` (:data:`CLIP_VARIANTS`) CLIP's where they differ (PCam, Caltech101, ImageNet's 80 templates) and readable
names for the folder-named AID and Office-31 classes. Both follow the label order of the standard loaders and keep
CLIP's letter case where ReCLIP's file capitalises differently (CLIP's tokenizer lowercases all text, so the case is
not seen by the model).

An image folder is matched to its dataset by its class folder names (:func:`match_folder`: ImageNet's wnids, or names
equal up to case, spaces and punctuation, e.g. Office-Home's ``Alarm_Clock``), so that it gets the dataset's prompts.
"""
from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

__all__ = ["ALIASES", "CLIP_VARIANTS", "DATASETS", "VARIANTS", "DatasetPrompts", "from_folder", "get_prompts",
           "imagenet_wnids", "match_folder", "prompts_for_folder"]

PLACEHOLDER = "{}"
VARIANTS = ("released", "clip")


@dataclass(frozen=True)
class DatasetPrompts:
    """The class names and prompt templates of one dataset.

    Attributes:
        name: the dataset key (ReCLIP's spelling, e.g. ``"standford_cars"``), or a free name for a folder.
        classnames: one name per class, in label order.
        templates: prompt templates, each with exactly one ``"{}"`` for the class name.
        synonyms: ``None``, or per class all its names (the first one ``classnames[i]``), ensembled
            by :meth:`prompts`.
    """

    name: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        for field in ("classnames", "templates"):
            value = getattr(self, field)
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise TypeError(f"{field} must be a sequence of strings, got {type(value).__name__}")
            value = tuple(value)
            if not value:
                raise ValueError(f"{self.name!r}: {field} is empty")
            if not all(isinstance(item, str) for item in value):
                raise TypeError(f"{self.name!r}: {field} must hold strings only")
            object.__setattr__(self, field, value)
        for template in self.templates:
            if template.count(PLACEHOLDER) != 1 or "{" in template.replace(PLACEHOLDER, "") \
                    or "}" in template.replace(PLACEHOLDER, ""):
                raise ValueError(f"{self.name!r}: template {template!r} must contain exactly one '{{}}' and no other "
                                 "braces")
        if self.synonyms is not None:
            object.__setattr__(self, "synonyms", tuple(tuple(names) for names in self.synonyms))
            if [names[0] if names else None for names in self.synonyms] != list(self.classnames):
                raise ValueError(f"{self.name!r}: synonyms must hold one tuple per class, starting with its classname")

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @property
    def classes_with_synonyms(self) -> tuple[str | tuple[str, ...], ...]:
        """Per class its name, or the tuple of its synonyms where the dataset has them (the form
        :class:`clipadapt.reclip.ReCLIP` takes, as the released code's class lists)."""
        return self.synonyms if self.synonyms is not None else self.classnames

    def prompts(self, class_index: int) -> list[str]:
        """Every template formatted with every name of class ``class_index`` (0 <= class_index <
        num_classes), template by template: ``[t.format(n) for t in templates for n in names]``."""
        index = operator.index(class_index)
        if not 0 <= index < len(self.classnames):
            raise IndexError(f"{self.name!r}: class index {index} out of range for {len(self.classnames)} classes")
        names = self.synonyms[index] if self.synonyms is not None else (self.classnames[index],)
        return [template.format(name) for template in self.templates for name in names]

    def first_prompts(self) -> list[str]:
        """``templates[0]`` formatted with every class name, in label order (ReCLIP-T's prompts)."""
        template = self.templates[0]
        return [template.format(classname) for classname in self.classnames]


def _load_tables() -> tuple[dict[str, DatasetPrompts], dict[str, DatasetPrompts], dict[str, str]]:
    """The released and CLIP variants of every dataset and the aliases, from the package's ``prompts.json``.

    The file holds named tables of class names, synonyms and templates (each with a note on its
    source and how it differs from the other variant) and, per dataset key, the tables of the
    released variant plus, under ``"clip"``, those the CLIP variant uses instead.
    """
    data = json.loads(resources.files("clipadapt.clip").joinpath("prompts.json").read_text(encoding="utf-8"))
    tables = {"classnames": {name: table["names"] for name, table in data["classnames"].items()},
              "templates": {name: table["templates"] for name, table in data["templates"].items()}}
    synonyms = {name: table["names"] for name, table in data["synonyms"].items()}
    released, clip = {}, {}
    for key, entry in data["datasets"].items():
        released[key] = DatasetPrompts(key, tables["classnames"][entry["classnames"]],
                                       tables["templates"][entry["templates"]],
                                       synonyms[entry["synonyms"]] if "synonyms" in entry else None)
        clip_tables = entry.get("clip", {})
        clip[key] = replace(released[key], **{field: tables[field][name] for field, name in clip_tables.items()})
    return released, clip, data["aliases"]


_RELEASED, _CLIP, _ALIASES = _load_tables()

DATASETS: dict[str, DatasetPrompts] = _RELEASED
"""The ReCLIP datasets by ReCLIP's keys, with the released prompts."""

CLIP_VARIANTS: dict[str, DatasetPrompts] = _CLIP
"""The same datasets with CLIP's prompts where they differ from the released ones."""

ALIASES: dict[str, str] = _ALIASES
"""Other names accepted by :func:`get_prompts`, mapped to their key in :data:`DATASETS`."""


def get_prompts(name: str, variant: str = "released") -> DatasetPrompts:
    """The :class:`DatasetPrompts` of dataset ``name`` (a key of :data:`DATASETS` or :data:`ALIASES`; case and
    "-" / "_" are not significant) in ``variant`` ("released" or "clip", see :data:`VARIANTS`). Raises KeyError,
    naming the known datasets, for any other name."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    registry = _registry_of(variant)
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in registry:
        known = ", ".join(sorted([*registry, *ALIASES]))
        raise KeyError(f"unknown dataset {name!r}; known datasets: {known}")
    return registry[key]


def _registry_of(variant: str) -> dict[str, DatasetPrompts]:
    if variant not in VARIANTS:
        raise ValueError(f"variant: use one of {', '.join(VARIANTS)}, got {variant!r}")
    return DATASETS if variant == "released" else CLIP_VARIANTS


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 WordNet ids of ImageNet-1k's classes in label order (sorted, as the class folders
    ``n01440764`` ...): ``imagenet_wnids()[i]`` is the folder of ``get_prompts("imagenet").classnames[i]``."""
    text = resources.files("clipadapt.clip").joinpath("imagenet_wnids.txt").read_text(encoding="utf-8")
    return tuple(text.split())


# Datasets whose class folders are ids rather than names: the ids of their classes in label order. A folder may hold
# any subset of them (ImageNet-100 is a folder of 100 wnids).
_FOLDER_IDS = {"imagenet": imagenet_wnids}


def match_folder(folder_names: Iterable[str], *, variant: str = "released",
                 dataset: str | None = None) -> DatasetPrompts | None:
    """The prompts of the dataset whose classes an image folder holds, in the folder's label order.

    ``folder_names`` are the class folder names in label order (``ImageFolder(...).classes``).
    They match a dataset when they are ImageNet wnids (any subset of the 1000), or when they
    are exactly the dataset's class names up to case, spaces and punctuation (``Alarm_Clock``
    for Office-Home's "Alarm Clock", ``SparseResidential`` for AID). The first dataset that
    matches is returned (domains of Office-31 or Office-Home share their prompts), with its
    classes reordered to the folder's order; ``None`` when none matches. ``dataset`` restricts
    the search to that key and raises ValueError when the folder does not match it.
    """
    names = _folder_names(folder_names)
    candidates = [get_prompts(dataset, variant)] if dataset is not None else list(_registry_of(variant).values())
    for entry in candidates:
        order = _folder_order(entry, names)
        if order is not None:
            return _reordered(entry, order)
    if dataset is not None:
        raise ValueError(f"dataset: the folder's classes {list(names)[:8]} are not the class names of {dataset!r}; "
                         "leave the dataset out to use the folder names as class names")
    return None


def prompts_for_folder(folder_names: Iterable[str], *, variant: str = "released",
                       dataset: str | None = None) -> DatasetPrompts:
    """:func:`match_folder`'s prompts, else :func:`from_folder`'s (the folder names as class names)."""
    names = _folder_names(folder_names)
    return match_folder(names, variant=variant, dataset=dataset) or from_folder(names)


def _folder_names(folder_names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(folder_names, str):
        raise TypeError("folder_names must be a sequence of folder names, not a single string")
    return tuple(str(name) for name in folder_names)


def _name_key(name: str) -> str:
    """A name without case, spaces and punctuation: "Alarm_Clock", "alarm clock" -> "alarmclock"."""
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def _folder_order(entry: DatasetPrompts, names: tuple[str, ...]) -> list[int] | None:
    """The dataset's class index of every folder, or None when the folders are not its classes."""
    if entry.name in _FOLDER_IDS:
        index = {identifier: i for i, identifier in enumerate(_FOLDER_IDS[entry.name]())}
        order = [index.get(name) for name in names]
        return order if None not in order and len(set(order)) == len(order) else None
    keys = {}
    for i, synonyms in enumerate(entry.classes_with_synonyms):
        for synonym in (synonyms,) if isinstance(synonyms, str) else synonyms:
            keys.setdefault(_name_key(synonym), set()).add(i)
    order = [keys.get(_name_key(name), set()) for name in names]
    if len(names) != entry.num_classes or any(len(classes) != 1 for classes in order):
        return None  # other classes, or names that do not tell the classes apart
    indices = [classes.pop() for classes in order]
    return indices if len(set(indices)) == len(indices) else None


def _reordered(entry: DatasetPrompts, order: list[int]) -> DatasetPrompts:
    if order == list(range(entry.num_classes)):
        return entry
    synonyms = None if entry.synonyms is None else [entry.synonyms[i] for i in order]
    return DatasetPrompts(entry.name, [entry.classnames[i] for i in order], entry.templates, synonyms)


def from_folder(classnames: Iterable[str], templates: Sequence[str] = ("a photo of a {}.",), *,
                name: str = "folder") -> DatasetPrompts:
    """Prompts for an image folder dataset: ``classnames`` are its class folder names in label order (e.g.
    torchvision ``ImageFolder(...).classes``, which are sorted); "_" becomes a space ("Alarm_Clock" -> "Alarm Clock").
    """
    if isinstance(classnames, str):
        raise TypeError("classnames must be a sequence of folder names, not a single string")
    names = tuple(str(folder).replace("_", " ").strip() for folder in classnames)
    if any(not classname for classname in names):
        raise ValueError("empty class name after replacing '_' by spaces")
    if len(set(names)) != len(names):
        duplicates = sorted({classname for classname in names if names.count(classname) > 1})
        raise ValueError(f"folder names give duplicate class names: {duplicates}")
    return DatasetPrompts(name, names, tuple(templates))
