"""A tiny CLIP that learns scikit-learn's digits in seconds: the stand-in for real CLIP weights in
the ReCLIP and MUDG tutorials, so that they run anywhere, offline, on the CPU.

The model is open_clip's CLIP with a 16 x 16 image tower of two blocks and a two-block text
tower over 32 tokens, pre-trained contrastively on clean 8 x 8 digits against captions made
from the class names. The tutorials then adapt it to a shifted domain: the same digits, noisier
and lower in contrast.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from clipadapt.clip import ClipModel, load_clip, register_model_config

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATES = ["a photo of the digit {}.", "a picture of the number {}.", "{}, a handwritten digit."]
ARCHITECTURE = "digits-tiny"
CONFIG = {"embed_dim": 64,
          "vision_cfg": {"image_size": 16, "layers": 2, "width": 96, "patch_size": 4},
          "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2}}


def as_image(pixels: np.ndarray) -> Image.Image:
    """An 8 x 8 digit with intensities in [0, 1] as an RGB image."""
    return Image.fromarray(np.round(255 * pixels).astype(np.uint8)).convert("RGB")


def shifted(pixels: np.ndarray, seed: int, *, noise: float = 0.2, low: float = 0.2, high: float = 0.8) -> np.ndarray:
    """The target domain: gaussian noise of this standard deviation added, contrast squeezed
    into [low, high]."""
    noisy = pixels + noise * np.random.default_rng(seed).standard_normal(pixels.shape)
    return low + (high - low) * np.clip(noisy, 0, 1)


def captions(generator: torch.Generator, clauses: list[str]) -> list[str]:
    """One caption per class for a training step: a random template and, half of the time when
    ``clauses`` are given, a random descriptor clause after it (web captions have clauses, and
    MUDG's queries add them)."""
    template = TEMPLATES[int(torch.randint(len(TEMPLATES), (), generator=generator))]
    with_clause = bool(torch.rand((), generator=generator) < 0.5)
    if not clauses or not with_clause:
        return [template.format(name) for name in NAMES]
    clause = clauses[int(torch.randint(len(clauses), (), generator=generator))]
    return [template.format(name).removesuffix(".") + "," + clause for name in NAMES]


def new_digits_clip(seed: int = 0) -> ClipModel:
    """The tiny CLIP, randomly initialised from ``seed``."""
    torch.manual_seed(seed)
    register_model_config(ARCHITECTURE, CONFIG)
    return load_clip(ARCHITECTURE)


def as_tensor_images(pixels: np.ndarray) -> torch.Tensor:
    """8 x 8 digits with intensities in [0, 1] as the model's input [n, 3, 16, 16] in [-1, 1]
    (what ``preprocess`` of an image file gives, without the round trip through files)."""
    digits = torch.as_tensor(pixels, dtype=torch.float32)[:, None]
    upsampled = F.interpolate(digits, size=16, mode="bilinear", align_corners=False)
    return ((upsampled - 0.5) / 0.5).repeat(1, 3, 1, 1)


def pretrain(clip: ClipModel, images: torch.Tensor, labels: np.ndarray, *, steps: int = 300,
             clauses: list[str] | None = None, seed: int = 0) -> None:
    """``steps`` contrastive steps of 64 clean ``images`` (model inputs) against the captions of
    their classes (one caption per class and step: a batch's images of one digit share it)."""
    targets = torch.as_tensor(labels)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(clip.model.parameters(), lr=1e-3, weight_decay=0.1)
    clip.model.train()
    for _ in range(steps):
        batch = torch.randint(len(targets), (64,), generator=generator)
        texts = clip.tokenizer(captions(generator, clauses or []))
        noisy = images[batch] + 0.05 * torch.randn(images[batch].shape, generator=generator)
        image_features = F.normalize(clip.model.encode_image(noisy), dim=1)
        text_features = F.normalize(clip.model.encode_text(texts), dim=1)
        logits = clip.model.logit_scale.exp() * image_features @ text_features.T
        loss = F.cross_entropy(logits, targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    clip.model.eval()


@torch.no_grad()
def zero_shot_accuracy(clip: ClipModel, images: torch.Tensor, labels: torch.Tensor, names: list[str]) -> float:
    """Accuracy of classifying preprocessed ``images`` by their nearest class prompt, the
    templates' text embeddings averaged per class."""
    image_features = F.normalize(clip.model.encode_image(images), dim=1)
    prompts = [F.normalize(clip.model.encode_text(clip.tokenizer([t.format(n) for n in names])), dim=1)
               for t in TEMPLATES]
    classes = F.normalize(torch.stack(prompts).mean(0), dim=1)
    return float(((image_features @ classes.T).argmax(1) == labels).float().mean())
