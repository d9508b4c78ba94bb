"""MUDG end to end, offline, through the ``clipadapt mudg`` commands a user runs.

A small CLIP is pre-trained here on clean scikit-learn digits (captions from the class names,
half of them with a descriptor clause). The target task knows only the class names of seven
digits, "zero" to "six"; its test set is held-out digits in a shifted domain (noisier, lower
contrast). The source corpus is a folder of captioned images: other digits of all ten classes,
half of them in the shifted domain, so digits seven to nine are distractors, plus abstract noise
images. MUDG builds the corpus embeddings, the paired-k-means index, retrieves and selects
training images for the seven names, fine-tunes, and must beat the zero-shot accuracy.

Measured on this seed (2 CPU threads): the selection holds 168 images (24 per class), 77% of
them with the right label; target accuracy with descriptor score averaging 64.8% zero-shot ->
74.7% after MUDG (plain prompt 64.0% -> 73.1%); fine-tuning seed 2 gave +6.0 points (plain +3.0). The small model needs a larger learning rate than the released 6.4e-4 tuned for
ViT-B/16, crops that keep most of an 8 x 8 digit, and no flips (a flipped digit is another
glyph); all are options of ``clipadapt mudg train``.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits

from clipadapt.cli import main
from clipadapt.clip import load_clip, register_model_config
from clipadapt.mudg.augment import load_descriptors

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TARGET_CLASSES = 7  # zero .. six; seven, eight and nine appear in the corpus only
TEMPLATE = "a photo of the digit {}."
PRETRAIN_TEMPLATES = [TEMPLATE, "a picture of the number {}.", "{}, a handwritten digit."]
TINY = {"embed_dim": 64, "vision_cfg": {"image_size": 16, "layers": 2, "width": 96, "patch_size": 4},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2}}
ARCHITECTURE = "clipadapt-mudg-e2e-tiny"


def as_image(pixels: np.ndarray) -> Image.Image:
    """An 8 x 8 digit with intensities in [0, 1] as an RGB image."""
    return Image.fromarray(np.round(255 * pixels).astype(np.uint8)).convert("RGB")


def shifted(pixels: np.ndarray, seed: int) -> np.ndarray:
    """The target domain: added noise, contrast squeezed into [0.2, 0.8]."""
    noise = 0.2 * np.random.default_rng(seed).standard_normal(pixels.shape)
    return 0.2 + 0.6 * np.clip(pixels + noise, 0, 1)


def pretrain(clip, images: torch.Tensor, labels: torch.Tensor, descriptors: list[str], steps: int = 300) -> None:
    """Contrastive pre-training of images against captions of their class (a random template,
    half of the time followed by a random descriptor clause, as web captions have clauses)."""
    model, generator = clip.model, torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(labels), (64,), generator=generator)
        template = PRETRAIN_TEMPLATES[int(torch.randint(0, len(PRETRAIN_TEMPLATES), (), generator=generator))]
        clause = descriptors[int(torch.randint(0, len(descriptors), (), generator=generator))]
        with_clause = bool(torch.rand((), generator=generator) < 0.5)
        captions = [template.format(name)[:-1] + "," + clause if with_clause and template.endswith(".")
                    else template.format(name) for name in NAMES]
        noisy = images[batch] + 0.05 * torch.randn(images[batch].shape, generator=generator)
        image_features = F.normalize(model.encode_image(noisy), dim=1)
        text_features = F.normalize(model.encode_text(clip.tokenizer(captions)), dim=1)
        loss = F.cross_entropy(model.logit_scale.exp() * image_features @ text_features.T, labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def write_corpus_folder(folder: Path, pixels: np.ndarray, labels: np.ndarray, n_noise: int) -> None:
    """Captioned images (captions.csv): the digits, every other one shifted, then noise images.
    File names carry the true digit (for the test's own bookkeeping only)."""
    folder.mkdir(parents=True)
    rows = []
    for item, (image, label) in enumerate(zip(pixels, labels)):
        domain = "shifted" if item % 2 else "clean"
        name = f"{item:04d}-{NAMES[label]}-{domain}.png"
        as_image(shifted(image, 1000 + item) if item % 2 else image).save(folder / name)
        rows.append((name, PRETRAIN_TEMPLATES[item % len(PRETRAIN_TEMPLATES)].format(NAMES[label])))
    noise = np.random.default_rng(7).random((n_noise, 8, 8))
    for item, image in enumerate(noise):
        name = f"noise-{item:03d}.png"
        as_image(image).save(folder / name)
        rows.append((name, "an abstract pattern of grey squares."))
    with open(folder / "captions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption"])
        writer.writerows(rows)


def write_target_folder(folder: Path, pixels: np.ndarray, labels: np.ndarray) -> list[str]:
    """The labelled target test set as an image folder; returns its class names in label order
    (ImageFolder's: sorted folder names)."""
    for item, (image, label) in enumerate(zip(pixels, labels)):
        (folder / NAMES[label]).mkdir(parents=True, exist_ok=True)
        as_image(shifted(image, item)).save(folder / NAMES[label] / f"{item:04d}.png")
    return sorted(NAMES[:TARGET_CLASSES])


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        root = tmp_path_factory.mktemp("mudg-e2e")
        digits = load_digits()
        pixels, labels = digits.images / 16.0, digits.target
        order = np.random.default_rng(0).permutation(len(labels))
        pretrain_rows, corpus_rows, test_rows = order[:700], order[700:1300], order[1300:]
        test_rows = test_rows[labels[test_rows] < TARGET_CLASSES]

        register_model_config(ARCHITECTURE, TINY)
        (root / "model.json").write_text(json.dumps(TINY))
        torch.manual_seed(0)
        clip = load_clip(ARCHITECTURE)
        images = torch.stack([clip.preprocess(as_image(image)) for image in pixels[pretrain_rows]])
        pretrain(clip, images, torch.as_tensor(labels[pretrain_rows]), load_descriptors())
        torch.save(clip.model.state_dict(), root / "model.pt")

        write_corpus_folder(root / "source", pixels[corpus_rows], labels[corpus_rows], n_noise=60)
        classnames = write_target_folder(root / "target", pixels[test_rows], labels[test_rows])
        (root / "classnames.txt").write_text("\n".join(classnames) + "\n")
        yield root
    finally:
        torch.set_num_threads(threads)


def run(root: Path, step: str, *options: str) -> None:
    model = ["--model", ARCHITECTURE, "--model-config", str(root / "model.json"), "--weights", str(root / "model.pt")]
    assert main(["mudg", step, *options, *model]) == 0


def test_mudg_raises_target_accuracy_over_zero_shot(scenario):
    root = scenario
    run(root, "corpus", "--images", str(root / "source"), "--out", str(root / "corpus"), "--shard-rows", "256")
    assert main(["mudg", "index", "--corpus", str(root / "corpus"), "--out", str(root / "index"),
                 "--clusters", "16"]) == 0
    run(root, "retrieve", "--corpus", str(root / "corpus"), "--index", str(root / "index"),
        "--classnames", str(root / "classnames.txt"), "--template", TEMPLATE, "--rank-clusters", "3",
        "--n-descriptors", "16", "--k", "32", "--k-sel", "24", "--threshold", "0.25", "--out", str(root / "selection"))
    run(root, "train", "--selection", str(root / "selection"), "--test", str(root / "target"),
        "--iterations", "200", "--batch-size", "64", "--lr", "0.01", "--vision-trainable-from", "1",
        "--text-trainable-from", "1", "--crop-scale", "0.7", "1", "--no-flip", "--out", str(root / "run"))

    with open(root / "selection" / "selection.csv") as handle:
        selected = list(csv.DictReader(handle))
    assert selected and all(row["classname"] in NAMES[:TARGET_CLASSES] for row in selected)
    result = json.loads((root / "run" / "result.json").read_text())
    zero_shot, final = result["zero_shot_accuracy"], result["final_accuracy"]
    assert 30.0 < zero_shot["descriptors"] < 85.0, "the shift should hurt the pre-trained model without ruining it"
    assert final["descriptors"] >= zero_shot["descriptors"] + 3.0, result
    assert final["plain"] >= zero_shot["plain"] + 1.0, result
