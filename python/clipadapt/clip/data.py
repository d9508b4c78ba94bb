"""Target datasets (torchvision by name, or any image folder) and CLIP image features with an
on-disk cache keyed by model (architecture, weights, activation) and dataset."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from clipadapt._files import atomic_open
from clipadapt.clip._torchvision import import_torchvision
from clipadapt.clip.models import ClipModel

log = logging.getLogger(__name__)

# ReCLIP's dataset keys -> (torchvision class, constructor arguments of the evaluated split).
TORCHVISION_TARGETS: dict[str, tuple[str, dict[str, Any]]] = {
    "caltech101": ("Caltech101", {}),
    "cifar10": ("CIFAR10", {"train": False}),
    "cifar100": ("CIFAR100", {"train": False}),
    "country211": ("Country211", {"split": "test"}),
    "dtd": ("DTD", {"split": "test"}),
    "eurosat": ("EuroSAT", {}),
    "fer2013": ("FER2013", {"split": "test"}),
    "fgvc": ("FGVCAircraft", {"split": "test"}),
    "flowers102": ("Flowers102", {"split": "test"}),
    "food101": ("Food101", {"split": "test"}),
    "gtsrb": ("GTSRB", {"split": "test"}),
    "imagenet": ("ImageNet", {"split": "val"}),
    "mnist": ("MNIST", {"train": False}),
    "oxford_pets": ("OxfordIIITPet", {"split": "test"}),
    "pcam": ("PCAM", {"split": "val"}),
    "renderedsst2": ("RenderedSST2", {"split": "test"}),
    "standford_cars": ("StanfordCars", {"split": "test"}),
    "stl10": ("STL10", {"split": "test"}),
    "sun397": ("SUN397", {}),
}


def load_target(name_or_folder: str | os.PathLike, *, root: str | os.PathLike = "data", transform: Any = None,
                download: bool = False) -> Any:
    """A target dataset of (image tensor, label) pairs.

    ``name_or_folder`` is a directory laid out as ``class_name/image.jpg`` (torchvision
    ImageFolder; classes in sorted folder order) or one of :data:`TORCHVISION_TARGETS` (stored
    under ``root``; ``download=True`` fetches it where there is internet).
    """
    datasets = import_torchvision().datasets
    path = Path(name_or_folder)
    if path.is_dir():
        return datasets.ImageFolder(str(path), transform=transform)
    name = str(name_or_folder)
    if name not in TORCHVISION_TARGETS:
        raise ValueError(f"dataset: {name!r} is neither an image folder nor one of {sorted(TORCHVISION_TARGETS)}")
    class_name, arguments = TORCHVISION_TARGETS[name]
    try:
        return getattr(datasets, class_name)(str(root), transform=transform, download=download, **arguments)
    except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
        raise FileNotFoundError(f"dataset: {name} is not under {root} ({error}); pass download=True where there "
                                "is internet, or point root at a copy") from error


def weights_fingerprint(model: ClipModel) -> str:
    """Identifies the weights: the pretrained tag, or a file's path, size and modification time."""
    path = Path(model.weights)
    if path.is_file():
        stat = path.stat()
        return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return model.weights


def cache_path(cache_dir: str | os.PathLike, model: ClipModel, dataset_id: str, size: int) -> Path:
    key = json.dumps({**model.identity(), "weights": weights_fingerprint(model), "dataset": dataset_id, "size": size,
                      "preprocess": repr(model.preprocess)}, sort_keys=True)
    return Path(cache_dir) / f"features-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


@torch.no_grad()
def image_features(model: ClipModel, dataset: Any, *, dataset_id: str, batch_size: int = 64, device: str = "cpu",
                   cache_dir: str | os.PathLike | None = None, num_workers: int = 0,
                   progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image features float32 [N, D] and labels int64 [N] of a dataset, in order.

    With ``cache_dir`` they are stored under a key of the model's identity (architecture,
    weights, activation), dataset id, size and preprocessing, and read back instead of recomputed.
    """
    cached = cache_path(cache_dir, model, dataset_id, len(dataset)) if cache_dir is not None else None
    if cached is not None and cached.is_file():
        log.info("image features: read %s", cached)
        with np.load(cached) as stored:
            return torch.from_numpy(stored["features"]), torch.from_numpy(stored["labels"])
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    features, labels = [], []
    for images, targets in tqdm(loader, desc=f"features {dataset_id}", disable=not progress):
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
