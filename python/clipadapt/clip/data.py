"""Target datasets (by ReCLIP's dataset key and split, or any image folder) and CLIP image features with an
on-disk cache keyed by model (architecture, weights, activation) and dataset."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from clipadapt._files import atomic_open
from clipadapt.clip import datasets
from clipadapt.clip._torchvision import import_torchvision
from clipadapt.clip.amp import autocast, effective_amp
from clipadapt.clip.models import ClipModel

log = logging.getLogger(__name__)

Loader = Callable[[Path, Any, bool], Any]
"""``(root, transform, download) -> dataset`` of one split of a dataset."""


def _torchvision(class_name: str, **arguments: Any) -> Loader:
    """A split read by torchvision's dataset class ``class_name`` with ``arguments``."""
    def load(root: Path, transform: Any, download: bool) -> Any:
        try:
            return getattr(import_torchvision().datasets, class_name)(str(root), transform=transform,
                                                                      download=download, **arguments)
        except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
            raise FileNotFoundError(f"dataset: {class_name} is not under {root} ({error}); pass download=True where "
                                    "there is internet, or point root at a copy") from error
    return load


def _local(dataset: str, read: Callable[..., Any], **arguments: Any) -> Loader:
    """A split read by :mod:`clipadapt.clip.datasets` from files the user provides."""
    def load(root: Path, transform: Any, download: bool) -> Any:
        if download:
            raise ValueError(f"download: {dataset} cannot be downloaded automatically (it needs a login or a "
                             f"licence); put it under {root} and leave download off")
        return read(root, transform=transform, **arguments)
    return load


def _sun397(split: str) -> Loader:
    """SUN397 by its partition files; ``download`` fetches the images through torchvision first."""
    def load(root: Path, transform: Any, download: bool) -> Any:
        if download:
            import_torchvision().datasets.SUN397(str(root), download=True)
        return datasets.sun397(root, split, transform=transform)
    return load


# ReCLIP's dataset keys -> split name -> loader. The first split of each is the one the released
# code evaluates on, the default of load_target.
TARGETS: dict[str, dict[str, Loader]] = {
    "caltech101": {"all": _torchvision("Caltech101")},
    "cifar10": {"test": _torchvision("CIFAR10", train=False)},
    "cifar100": {"test": _torchvision("CIFAR100", train=False)},
    "country211": {"test": _torchvision("Country211", split="test")},
    "dtd": {"test": _torchvision("DTD", split="test")},
    "eurosat": {"all": _torchvision("EuroSAT")},
    "fer2013": {split: _local("FER2013", datasets.fer2013, split=split) for split in datasets.FER2013_USAGES},
    "fgvc": {"test": _torchvision("FGVCAircraft", split="test")},
    "flowers102": {"test": _torchvision("Flowers102", split="test")},
    "food101": {"test": _torchvision("Food101", split="test")},
    "gtsrb": {"test": _torchvision("GTSRB", split="test")},
    "imagenet": {"val": _local("ImageNet", datasets.imagenet_val)},
    "mnist": {"test": _torchvision("MNIST", train=False)},
    "oxford_pets": {"test": _torchvision("OxfordIIITPet", split="test")},
    "pcam": {"val": _torchvision("PCAM", split="val")},
    "renderedsst2": {"test": _torchvision("RenderedSST2", split="test")},
    "standford_cars": {"test": _torchvision("StanfordCars", split="test")},
    "stl10": {"test": _torchvision("STL10", split="test")},
    "sun397": {split: _sun397(split) for split in ("test", "train", "all")},
}


def load_target(name_or_folder: str | os.PathLike, *, root: str | os.PathLike = "data", transform: Any = None,
                download: bool = False, split: str | None = None) -> Any:
    """A target dataset of (image tensor, label) pairs, with ``classes`` in label order.

    ``name_or_folder`` is a directory laid out as ``class_name/image.jpg`` (torchvision
    ImageFolder; classes in sorted folder order) or one of :data:`TARGETS` (stored under
    ``root``; ``download=True`` fetches torchvision's where there is internet). ``split`` picks
    one of the dataset's splits; ``None`` is the split the released code evaluates on (SUN397's
    ``Testing_01.txt``, FER2013's public test set; :mod:`clipadapt.clip.datasets`).
    """
    path = Path(name_or_folder)
    if path.is_dir():
        if split is not None:
            raise ValueError(f"split: an image folder has no splits; point at the split's folder instead of {split!r}")
        return import_torchvision().datasets.ImageFolder(str(path), transform=transform)
    name = str(name_or_folder)
    if name not in TARGETS:
        raise ValueError(f"dataset: {name!r} is neither an image folder nor one of {sorted(TARGETS)}")
    splits = TARGETS[name]
    if split is not None and split not in splits:
        raise ValueError(f"split: {name} has the splits {', '.join(splits)}, got {split!r}")
    return splits[split or next(iter(splits))](Path(root), transform, download)


def weights_fingerprint(model: ClipModel) -> str:
    """Identifies the weights: the pretrained tag, or a file's path, size and modification time."""
    path = Path(model.weights)
    if path.is_file():
        stat = path.stat()
        return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return model.weights


def cache_path(cache_dir: str | os.PathLike, model: ClipModel, dataset_id: str, size: int,
               amp: str | None = None) -> Path:
    """The cache file of a dataset's features: named by a hash of everything they depend on
    (``amp``: the autocast dtype the forwards ran in, None for float32)."""
    key = json.dumps({**model.identity(), "weights": weights_fingerprint(model), "dataset": dataset_id, "size": size,
                      "preprocess": repr(model.preprocess), "amp": amp}, sort_keys=True)
    return Path(cache_dir) / f"features-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


@torch.no_grad()
def image_features(model: ClipModel, dataset: Any, *, dataset_id: str, batch_size: int = 64, device: str = "cpu",
                   cache_dir: str | os.PathLike | None = None, num_workers: int = 0, amp: str | None = None,
                   progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image features float32 [N, D] and labels int64 [N] of a dataset, in order.

    ``amp`` ("fp16", "bf16") autocasts the forwards on CUDA (:mod:`clipadapt.clip.amp`). With
    ``cache_dir`` they are stored under a key of the model's identity (architecture, weights,
    activation), dataset id, size, preprocessing and precision, and read back instead of recomputed.
    """
    applied_amp = effective_amp(amp, device)
    cached = cache_path(cache_dir, model, dataset_id, len(dataset), applied_amp) if cache_dir is not None else None
    if cached is not None and cached.is_file():
        log.info("image features: read %s", cached)
        with np.load(cached) as stored:
            return torch.from_numpy(stored["features"]), torch.from_numpy(stored["labels"])
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    features, labels = [], []
    for images, targets in tqdm(loader, desc=f"features {dataset_id}", disable=not progress):
        with autocast(applied_amp, device):
            encoded = model.model.encode_image(images.to(device))
        features.append(torch.nn.functional.normalize(encoded.float(), dim=1).cpu())
        labels.append(torch.as_tensor(targets, dtype=torch.int64))
    features_all, labels_all = torch.cat(features), torch.cat(labels)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(cached, "wb") as handle:  # a killed run never leaves a truncated cache entry
            np.savez(handle, features=features_all.numpy(), labels=labels_all.numpy())
        log.info("image features: wrote %s", cached)
    return features_all, labels_all
