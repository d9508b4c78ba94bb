"""Target datasets that torchvision does not read as the released evaluations do: ImageNet's
validation set in its usual layouts, FER2013's CSV splits and SUN397's partition files.

Each loader returns a map-style dataset of ``(transform(RGB PIL image), label)`` with a
``classes`` list (label order). Where the released code's test split differs from torchvision's,
the released one is the default and the others are options:

* ImageNet (``<root>/imagenet``): the 50,000 validation images, labels in the sorted-wnid order
  of the 1000 classes, from class folders ``val/<wnid>/`` (torchvision's layout), or a flat
  folder of ``ILSVRC2012_val_*.JPEG`` with the devkit's ground truth (``validation/`` +
  ``ILSVRC2012_devkit_t12/data/``, ReCLIP's layout) or Kaggle's ``LOC_val_solution.csv``
  (``ILSVRC/Data/CLS-LOC/val/``, MUDG's).
* FER2013 (``<root>/fer2013``): ``public_test`` (3,589 images; ReCLIP's ``public_test.csv`` of
  ``label,pixels`` rows, or the PublicTest rows of Kaggle's ``fer2013.csv`` /
  ``icml_face_data.csv``), ``private_test``, ``test`` (both: torchvision's 7,178) or ``train``.
* SUN397 (``<root>/SUN397``): ``test`` (the 19,850 images of partition ``Testing_01.txt``, as
  released), ``train`` (``Training_01.txt``) or ``all`` (every image: torchvision's ~108.8k).
  The partition files come from the dataset's ``Partitions.zip``; put them in ``SUN397/`` or
  ``SUN397/Partitions/``.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipadapt.clip.prompts import get_prompts, imagenet_wnids

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Kaggle's Usage column value of each FER2013 split.
FER2013_USAGES = {"public_test": ("PublicTest",), "private_test": ("PrivateTest",),
                  "test": ("PublicTest", "PrivateTest"), "train": ("Training",)}
FER2013_SIDE = 48
SUN397_PARTITIONS = {"test": "Testing_01.txt", "train": "Training_01.txt"}
IMAGENET_DEVKIT = Path("ILSVRC2012_devkit_t12") / "data"
IMAGENET_GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
IMAGENET_KAGGLE_LABELS = "LOC_val_solution.csv"
IMAGENET_KAGGLE_IMAGES = Path("ILSVRC") / "Data" / "CLS-LOC" / "val"


class ImageFiles(torch.utils.data.Dataset):
    """``(transform(RGB image), label)`` of a list of image files.

    Attributes:
        files: the image paths; labels: int label of each; classes: class names in label order.
    """

    def __init__(self, files: Sequence[Path], labels: Sequence[int], classes: Sequence[str],
                 transform: Callable[[Any], Any] | None = None):
        if len(files) != len(labels):
            raise ValueError(f"files and labels: {len(files)} files but {len(labels)} labels")
        self.files, self.labels, self.classes = list(files), [int(label) for label in labels], list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from PIL import Image

        with Image.open(self.files[index]) as image:
            picture = image.convert("RGB")
        return (self.transform(picture) if self.transform is not None else picture), self.labels[index]


class PixelImages(torch.utils.data.Dataset):
    """``(transform(RGB image), label)`` of grey-level images held as a uint8 array [N, H, W]."""

    def __init__(self, pixels: np.ndarray, labels: Sequence[int], classes: Sequence[str],
                 transform: Callable[[Any], Any] | None = None):
        self.pixels, self.labels, self.classes = pixels, [int(label) for label in labels], list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from PIL import Image

        picture = Image.fromarray(self.pixels[index]).convert("RGB")  # the released loader converts to RGB
        return (self.transform(picture) if self.transform is not None else picture), self.labels[index]


# ---- ImageNet -----------------------------------------------------------------------------------

def imagenet_val(root: str | os.PathLike, transform: Callable[[Any], Any] | None = None) -> ImageFiles:
    """ImageNet's validation images under ``<root>/imagenet`` in any of the layouts of the module
    docstring; ``classes`` are the class names of the prompt tables (label i is wnid i of
    :func:`clipadapt.clip.prompts.imagenet_wnids`)."""
    base = Path(root) / "imagenet"
    wnids = imagenet_wnids()
    label_of = {wnid: label for label, wnid in enumerate(wnids)}
    classes = get_prompts("imagenet").classnames
    class_folders = base / "val"
    if class_folders.is_dir() and any(folder.name in label_of for folder in class_folders.iterdir()):
        files = sorted(file for folder in class_folders.iterdir() if folder.name in label_of
                       for file in folder.iterdir() if file.is_file())
        return ImageFiles(files, [label_of[file.parent.name] for file in files], classes, transform)
    if (base / IMAGENET_DEVKIT / IMAGENET_GROUND_TRUTH).is_file():
        images = _first_folder(base, ("validation", "val"))
        return _flat_imagenet(images, _devkit_wnids(base / IMAGENET_DEVKIT), label_of, classes, transform)
    if (base / IMAGENET_KAGGLE_LABELS).is_file():
        images = _first_folder(base, (IMAGENET_KAGGLE_IMAGES, "val"))
        return _flat_imagenet(images, _kaggle_wnids(base / IMAGENET_KAGGLE_LABELS), label_of, classes, transform)
    raise FileNotFoundError(
        f"dataset: no ImageNet validation set under {base}; expected class folders val/<wnid>/, or a flat folder "
        f"validation/ with {IMAGENET_DEVKIT / IMAGENET_GROUND_TRUTH} and meta.mat (the devkit), or "
        f"{IMAGENET_KAGGLE_LABELS} with {IMAGENET_KAGGLE_IMAGES}/")


def _first_folder(base: Path, names: Sequence[str | Path]) -> Path:
    for name in names:
        if (base / name).is_dir():
            return base / name
    raise FileNotFoundError(f"dataset: none of {[str(base / name) for name in names]} is a folder of images")


def _flat_imagenet(folder: Path, wnid_of: dict[str, str], label_of: dict[str, int], classes: Sequence[str],
                   transform: Callable[[Any], Any] | None) -> ImageFiles:
    """Validation images named by their id (``ILSVRC2012_val_00000001.JPEG``), labelled through ``wnid_of[id]``."""
    files = sorted(file for file in folder.iterdir() if file.is_file() and file.stem in wnid_of)
    if not files:
        raise FileNotFoundError(f"dataset: {folder} holds none of the labelled ILSVRC2012_val_* images")
    return ImageFiles(files, [label_of[wnid_of[file.stem]] for file in files], classes, transform)


def _devkit_wnids(devkit: Path) -> dict[str, str]:
    """Image id -> wnid from the devkit: line i of the ground truth is the ILSVRC2012_ID of image i."""
    from scipy.io import loadmat

    synsets = loadmat(str(devkit / "meta.mat"), squeeze_me=True)["synsets"]
    wnid_of_id = {int(identifier): str(wnid) for identifier, wnid in zip(synsets["ILSVRC2012_ID"], synsets["WNID"])}
    ids = (devkit / IMAGENET_GROUND_TRUTH).read_text().split()
    return {f"ILSVRC2012_val_{number:08d}": wnid_of_id[int(identifier)] for number, identifier in enumerate(ids, 1)}


def _kaggle_wnids(table: Path) -> dict[str, str]:
    """Image id -> wnid from Kaggle's LOC_val_solution.csv (the first word of each box list)."""
    with open(table, newline="") as handle:
        return {row["ImageId"]: row["PredictionString"].split()[0] for row in csv.DictReader(handle)}


# ---- FER2013 ------------------------------------------------------------------------------------

def fer2013(root: str | os.PathLike, split: str = "public_test",
            transform: Callable[[Any], Any] | None = None) -> PixelImages:
    """FER2013 under ``<root>/fer2013``: ``split`` one of :data:`FER2013_USAGES` (see the module docstring)."""
    if split not in FER2013_USAGES:
        raise ValueError(f"split: FER2013 has the splits {', '.join(FER2013_USAGES)}, got {split!r}")
    base = Path(root) / "fer2013"
    released = base / "public_test.csv"
    if split == "public_test" and released.is_file():
        with open(released, newline="") as handle:
            rows = [(row[0], row[1]) for row in csv.reader(handle)]
    else:
        rows = _kaggle_fer_rows(base, FER2013_USAGES[split])
    pixels = np.array([np.array(text.split(), dtype=np.uint8) for _, text in rows], dtype=np.uint8)
    if pixels.ndim != 2 or pixels.shape[1] != FER2013_SIDE ** 2:
        raise ValueError(f"dataset: FER2013 rows must hold {FER2013_SIDE ** 2} pixel values each")
    return PixelImages(pixels.reshape(-1, FER2013_SIDE, FER2013_SIDE), [int(label) for label, _ in rows],
                       FER2013_CLASSES, transform)


def _kaggle_fer_rows(base: Path, usages: tuple[str, ...]) -> list[tuple[str, str]]:
    """(emotion, pixels) of the rows of Kaggle's full table whose Usage is in ``usages``."""
    for name in ("fer2013.csv", "icml_face_data.csv"):
        if (base / name).is_file():
            with open(base / name, newline="") as handle:
                reader = csv.DictReader(handle, skipinitialspace=True)  # icml_face_data.csv: "emotion, Usage, pixels"
                return [(row["emotion"], row["pixels"]) for row in reader if row["Usage"] in usages]
    raise FileNotFoundError(f"dataset: no FER2013 under {base}; put Kaggle's fer2013.csv (or icml_face_data.csv) "
                            "there, or ReCLIP's public_test.csv for the default split")


# ---- SUN397 -------------------------------------------------------------------------------------

def sun397(root: str | os.PathLike, split: str = "test", transform: Callable[[Any], Any] | None = None) -> ImageFiles:
    """SUN397 under ``<root>/SUN397``: ``split`` "test" / "train" (partition 01) or "all"."""
    if split not in (*SUN397_PARTITIONS, "all"):
        raise ValueError(f"split: SUN397 has the splits {', '.join([*SUN397_PARTITIONS, 'all'])}, got {split!r}")
    base = Path(root) / "SUN397"
    if not (base / "ClassName.txt").is_file():
        raise FileNotFoundError(f"dataset: no SUN397 under {base} (ClassName.txt is missing); pass download=True "
                                "where there is internet, or point root at a copy")
    class_paths = [line.strip() for line in (base / "ClassName.txt").read_text().splitlines() if line.strip()]
    label_of = {path: label for label, path in enumerate(class_paths)}
    if split == "all":
        relative = sorted("/" + file.relative_to(base).as_posix() for file in base.rglob("sun_*.jpg"))
    else:
        relative = [line.strip() for line in _partition(base, SUN397_PARTITIONS[split]).read_text().splitlines()
                    if line.strip()]
    labels = [label_of[path.rsplit("/", 1)[0]] for path in relative]
    return ImageFiles([base / path.lstrip("/") for path in relative], labels, [path[3:] for path in class_paths],
                      transform)


def _partition(base: Path, name: str) -> Path:
    for folder in (base, base / "Partitions"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"dataset: SUN397's partition file {name} is in neither {base} nor {base / 'Partitions'}; "
                            "unzip the dataset's Partitions.zip there (or use split 'all')")
