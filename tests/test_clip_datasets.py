"""Target datasets from fake roots the tests write: ImageNet's validation layouts with the real
class names, FER2013's and SUN397's splits (the released ones by default), load_target's splits."""
import csv

import numpy as np
import pytest
from PIL import Image

from clipadapt.clip.data import TARGETS, load_target
from clipadapt.clip.prompts import DATASETS, get_prompts, imagenet_wnids

# ImageNet classes 0 (tench), 21 (kite) and 999 (toilet paper).
LABELS = (0, 21, 999)


def write_image(path, shade=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color=(shade, 0, 0)).save(path)


def imagenet_ids(count):
    return [f"ILSVRC2012_val_{number:08d}" for number in range(1, count + 1)]


def test_imagenet_class_folders(tmp_path):
    wnids = imagenet_wnids()
    for label in LABELS:
        write_image(tmp_path / "imagenet" / "val" / wnids[label] / f"{label}.JPEG")
    dataset = load_target("imagenet", root=tmp_path)
    assert len(dataset) == 3 and [label for _, label in dataset] == list(LABELS)
    assert dataset.classes == list(get_prompts("imagenet").classnames)
    assert dataset.classes[21] == "kite (bird of prey)"


def test_imagenet_flat_folder_with_the_devkit(tmp_path):
    from scipy.io import savemat

    wnids = imagenet_wnids()
    # The devkit numbers the synsets in its own order (ILSVRC2012_ID), not the sorted-wnid label order.
    synsets = np.zeros((3, 1), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O")])
    for row, (identifier, label) in enumerate(((1, 999), (2, 0), (3, 21))):
        synsets[row, 0] = (identifier, wnids[label])
    devkit = tmp_path / "imagenet" / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    savemat(str(devkit / "meta.mat"), {"synsets": synsets})
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("3\n1\n2\n")
    for image in imagenet_ids(3):
        write_image(tmp_path / "imagenet" / "validation" / f"{image}.JPEG")
    dataset = load_target("imagenet", root=tmp_path)
    assert [label for _, label in dataset] == [21, 999, 0]


def test_imagenet_flat_folder_with_kaggles_labels(tmp_path):
    wnids = imagenet_wnids()
    with open(tmp_path / "LOC.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ImageId", "PredictionString"])
        for image, label in zip(imagenet_ids(3), (999, 21, 0)):
            writer.writerow([image, f"{wnids[label]} 1 2 3 4 {wnids[label]} 5 6 7 8"])
            write_image(tmp_path / "imagenet" / "ILSVRC" / "Data" / "CLS-LOC" / "val" / f"{image}.JPEG")
    (tmp_path / "LOC.csv").rename(tmp_path / "imagenet" / "LOC_val_solution.csv")
    assert [label for _, label in load_target("imagenet", root=tmp_path)] == [999, 21, 0]


def test_imagenet_is_never_downloaded_and_says_which_layouts_it_reads(tmp_path):
    with pytest.raises(ValueError, match="download: ImageNet cannot be downloaded"):
        load_target("imagenet", root=tmp_path, download=True)
    with pytest.raises(FileNotFoundError, match="val/<wnid>/"):
        load_target("imagenet", root=tmp_path)


def fer_pixels(value):
    return " ".join([str(value)] * 48 * 48)


def write_fer2013(base, usages):
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "fer2013.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for row, usage in enumerate(usages):
            writer.writerow([row % 7, fer_pixels(row), usage])


def test_fer2013_splits(tmp_path):
    usages = ["Training"] * 3 + ["PublicTest"] * 2 + ["PrivateTest"] * 4
    write_fer2013(tmp_path / "fer2013", usages)
    sizes = {split: len(load_target("fer2013", root=tmp_path, split=split))
             for split in ("public_test", "private_test", "test", "train")}
    assert sizes == {"public_test": 2, "private_test": 4, "test": 6, "train": 3}
    default = load_target("fer2013", root=tmp_path)
    assert len(default) == 2 and default.classes[3] == "happy"
    image, label = default[1]
    assert (image.mode, image.size, label) == ("RGB", (48, 48), 4) and image.getpixel((0, 0)) == (4, 4, 4)


def test_fer2013_reads_the_released_public_test_file_first(tmp_path):
    write_fer2013(tmp_path / "fer2013", ["PublicTest"] * 5)
    (tmp_path / "fer2013" / "public_test.csv").write_text(f"6,{fer_pixels(9)}\n2,{fer_pixels(7)}\n")
    released = load_target("fer2013", root=tmp_path)
    assert [label for _, label in released] == [6, 2]
    assert len(load_target("fer2013", root=tmp_path, split="test")) == 5


def test_fer2013_from_icml_face_data(tmp_path):
    (tmp_path / "fer2013").mkdir()
    (tmp_path / "fer2013" / "icml_face_data.csv").write_text(
        "emotion, Usage, pixels\n" + f"1,PublicTest,{fer_pixels(1)}\n5,Training,{fer_pixels(2)}\n")
    assert [label for _, label in load_target("fer2013", root=tmp_path)] == [1]
    with pytest.raises(FileNotFoundError, match="fer2013.csv"):
        load_target("fer2013", root=tmp_path / "elsewhere")


@pytest.mark.parametrize("partition_folder", ["", "Partitions"])
def test_sun397_partitions(tmp_path, partition_folder):
    base = tmp_path / "SUN397"
    classes = ["/a/abbey", "/b/bakery/shop"]
    base.mkdir()
    (base / "ClassName.txt").write_text("\n".join(classes) + "\n")
    images = {cls: [f"{cls}/sun_{cls[3:].replace('/', '_')}{i}.jpg" for i in range(3)] for cls in classes}
    for paths in images.values():
        for path in paths:
            write_image(base / path.lstrip("/"))
    (base / partition_folder).mkdir(exist_ok=True)
    (base / partition_folder / "Testing_01.txt").write_text(f"{images['/b/bakery/shop'][0]}\n{images['/a/abbey'][2]}\n")
    (base / partition_folder / "Training_01.txt").write_text("\n".join(images["/a/abbey"][:2]) + "\n")
    test = load_target("sun397", root=tmp_path)
    assert [label for _, label in test] == [1, 0] and test.classes == ["abbey", "bakery/shop"]
    assert [label for _, label in load_target("sun397", root=tmp_path, split="train")] == [0, 0]
    assert sorted(label for _, label in load_target("sun397", root=tmp_path, split="all")) == [0, 0, 0, 1, 1, 1]


def test_sun397_without_partition_files(tmp_path):
    (tmp_path / "SUN397").mkdir()
    (tmp_path / "SUN397" / "ClassName.txt").write_text("/a/abbey\n")
    with pytest.raises(FileNotFoundError, match="Partitions.zip"):
        load_target("sun397", root=tmp_path)


def test_split_selection():
    assert {key: next(iter(splits)) for key, splits in TARGETS.items() if key in ("sun397", "fer2013", "imagenet")} \
        == {"sun397": "test", "fer2013": "public_test", "imagenet": "val"}
    assert set(TARGETS) == set(DATASETS) - {  # the others are read from image folders
        "aid", "birdsnap", "resisc45", "office_a", "office_d", "office_w", "office_ar", "office_cl", "office_pr",
        "office_rw"}
    with pytest.raises(ValueError, match="split: sun397 has the splits test, train, all"):
        load_target("sun397", split="val")


def test_an_image_folder_has_no_splits(tmp_path):
    write_image(tmp_path / "images" / "cat" / "0.png")
    with pytest.raises(ValueError, match="split: an image folder has no splits"):
        load_target(tmp_path / "images", split="test")
