"""open_clip model loading: an architecture name plus a pretrained tag (downloaded where the
user has internet; ``HF_HUB_OFFLINE=1`` is respected) or a local weights file."""
from __future__ import annotations

import difflib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipadapt.clip._torchvision import import_torchvision

import_torchvision()
import open_clip  # noqa: E402

WEIGHT_SUFFIXES = (".bin", ".safetensors", ".pt", ".pth")


@dataclass
class ClipModel:
    """A loaded CLIP model with its image preprocessing and text tokenizer.

    Attributes:
        model: the open_clip model (``encode_image``, ``encode_text``), in eval mode.
        preprocess: PIL image -> float tensor [3, H, W] (resize, centre crop, normalise).
        tokenizer: list of strings -> int64 token tensor [n, context_length].
        architecture: the open_clip architecture name.
        weights: where the weights came from: the pretrained tag, the file path, or "random".
    """

    model: Any
    preprocess: Any
    tokenizer: Any
    architecture: str
    weights: str


def register_model_config(name: str, config: dict[str, Any]) -> None:
    """Make a custom architecture (open_clip's JSON config: ``embed_dim``, ``vision_cfg``,
    ``text_cfg``) loadable by ``name``, e.g. a small model trained from scratch."""
    directory = Path(tempfile.mkdtemp(prefix="clipadapt-model-config-"))
    (directory / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(directory)


def load_clip(architecture: str, *, pretrained: str | None = None, weights: str | os.PathLike | None = None,
              device: str = "cpu", precision: str = "fp32") -> ClipModel:
    """Load an open_clip model.

    Args:
        architecture: open_clip name, e.g. ``"ViT-L-14"`` (see ``open_clip.list_models()``), or
            one registered with :func:`register_model_config`.
        pretrained: a pretrained tag such as ``"openai"``, fetched from the hub (or its cache).
        weights: a local ``.bin`` / ``.safetensors`` / ``.pt`` file instead of a tag.
        device, precision: where and in which precision ("fp32", "fp16", "bf16") to load.

    With neither ``pretrained`` nor ``weights`` the model is randomly initialised.
    """
    if pretrained is not None and weights is not None:
        raise ValueError("pretrained and weights: give one or the other, not both")
    if architecture not in open_clip.list_models():
        close = difflib.get_close_matches(architecture, open_clip.list_models(), n=5)
        raise ValueError(f"architecture: unknown open_clip model {architecture!r}; close matches: {close}")
    source = _weights_source(pretrained, weights)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(architecture, pretrained=source, device=device,
                                                                     precision=precision)
    except Exception as error:  # download and checkpoint errors come in many types
        if weights is not None:
            raise RuntimeError(f"weights: could not load {weights} into {architecture}: {error}") from error
        raise RuntimeError(
            f"pretrained: weights {pretrained!r} for {architecture} are not available here ({error}). With no "
            "internet (or HF_HUB_OFFLINE=1) they must already be in the Hugging Face cache; otherwise download "
            "them where you have internet, or pass weights=PATH to a local file") from error
    model.eval()
    return ClipModel(model=model, preprocess=preprocess, tokenizer=open_clip.get_tokenizer(architecture),
                     architecture=architecture, weights=source or "random")


def _weights_source(pretrained: str | None, weights: str | os.PathLike | None) -> str | None:
    if weights is None:
        return pretrained
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights: no file at {path}; pass the path of a .bin, .safetensors or .pt file")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ValueError(f"weights: {path.name} has suffix {path.suffix!r}; use one of {', '.join(WEIGHT_SUFFIXES)}")
    return str(path)
