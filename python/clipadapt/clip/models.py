"""open_clip model loading: an architecture name plus a pretrained tag (downloaded where the
user has internet; ``HF_HUB_OFFLINE=1`` is respected) or a local weights file, with the
activation the weights were trained with (QuickGELU for OpenAI's CLIP)."""
from __future__ import annotations

import difflib
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from clipadapt import _validate
from clipadapt.clip._torchvision import import_torchvision

import_torchvision()
import open_clip  # noqa: E402

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".bin", ".safetensors", ".pt", ".pth")
QUICK_GELU, GELU = "quickgelu", "gelu"
# Entries only OpenAI's own checkpoints hold: its TorchScript archives store them beside the
# weights (open_clip's models have no such parameters, so a strict load would refuse them).
OPENAI_ONLY_KEYS = ("input_resolution", "context_length", "vocab_size")
# The Hugging Face repositories of OpenAI's weights in open_clip's layout end in ".openai"
# (timm/vit_large_patch14_clip_224.openai); the hub cache keeps that name in the file's path.
OPENAI_HUB_SUFFIX = ".openai"
WeightsDtype = Literal["float32", "float16", "bfloat16"]
# open_clip's names of the parameter dtypes (its create_model "precision").
_OPEN_CLIP_PRECISIONS = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


@dataclass
class ClipModel:
    """A loaded CLIP model with its image preprocessing and text tokenizer.

    Attributes:
        model: the open_clip model (``encode_image``, ``encode_text``), in eval mode.
        preprocess: PIL image -> float tensor [3, H, W] (resize, centre crop, normalise).
        tokenizer: list of strings -> int64 token tensor [n, context_length].
        architecture: the open_clip architecture name.
        weights: where the weights came from: the pretrained tag, the file path, or "random".
        activation: the towers' MLP activation, ``"quickgelu"`` (OpenAI's CLIP was trained with
            it) or ``"gelu"``; the same weights under the other one give other embeddings.
    """

    model: Any
    preprocess: Any
    tokenizer: Any
    architecture: str
    weights: str
    activation: str

    def identity(self) -> dict[str, str]:
        """What makes two loaded models embed alike: ``{"architecture", "weights", "activation"}``
        (recorded in results, corpora and feature cache keys)."""
        return {"architecture": self.architecture, "weights": self.weights, "activation": self.activation}


def register_model_config(name: str, config: dict[str, Any]) -> None:
    """Make a custom architecture (open_clip's JSON config: ``embed_dim``, ``vision_cfg``,
    ``text_cfg``) loadable by ``name``, e.g. a small model trained from scratch."""
    directory = Path(tempfile.mkdtemp(prefix="clipadapt-model-config-"))
    (directory / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(directory)


def load_clip(architecture: str, *, pretrained: str | None = None, weights: str | os.PathLike | None = None,
              device: str = "cpu", dtype: WeightsDtype = "float32", quick_gelu: bool | None = None) -> ClipModel:
    """Load an open_clip model.

    Args:
        architecture: open_clip name, e.g. ``"ViT-L-14"`` (see ``open_clip.list_models()``), or
            one registered with :func:`register_model_config`.
        pretrained: a pretrained tag such as ``"openai"``, fetched from the hub (or its cache).
        weights: a local ``.bin`` / ``.safetensors`` / ``.pt`` file instead of a tag: open_clip's
            state dict, or OpenAI's own checkpoint (its TorchScript ``.pt`` archive or state dict).
        device: where to load the model.
        dtype: the dtype of its parameters: ``"float32"``, ``"float16"`` or ``"bfloat16"``.
        quick_gelu: build the towers with QuickGELU (True) or GELU (False). ``None`` follows
            the weights: a tag's own setting (``"openai"``: QuickGELU); for a file, QuickGELU
            when it is an OpenAI checkpoint (TorchScript archive, or a state dict with OpenAI's
            ``input_resolution`` / ``context_length`` / ``vocab_size`` entries) or lies in a
            folder named like OpenAI's hub repositories (``*.openai``), else the architecture's
            config (GELU, or QuickGELU for the ``-quickgelu`` names). A file of OpenAI weights in
            open_clip's layout elsewhere cannot be told apart: pass ``quick_gelu=True``.

    With neither ``pretrained`` nor ``weights`` the model is randomly initialised.
    """
    if pretrained is not None and weights is not None:
        raise ValueError("pretrained and weights: give one or the other, not both")
    precision = _OPEN_CLIP_PRECISIONS[_validate.choice(dtype, "dtype", tuple(_OPEN_CLIP_PRECISIONS))]
    if architecture not in open_clip.list_models():
        close = difflib.get_close_matches(architecture, open_clip.list_models(), n=5)
        raise ValueError(f"architecture: unknown open_clip model {architecture!r}; close matches: {close}")
    checkpoint = _Checkpoint.inspect(_weights_file(weights)) if weights is not None else None
    use_quick_gelu = _resolve_quick_gelu(architecture, pretrained, checkpoint, quick_gelu)
    try:
        # force_quick_gelu sets the config (so open_clip's tag check agrees); the keyword also
        # turns QuickGELU off for a "-quickgelu" config when GELU is asked for.
        model, _, preprocess = open_clip.create_model_and_transforms(
            architecture, pretrained=pretrained or _open_clip_file(checkpoint), device=device, precision=precision,
            force_quick_gelu=use_quick_gelu, quick_gelu=use_quick_gelu)
        if checkpoint is not None and checkpoint.openai_layout:
            checkpoint.load_into(model)
    except Exception as error:  # download and checkpoint errors come in many types
        if weights is not None:
            raise RuntimeError(f"weights: could not load {weights} into {architecture}: {error}") from error
        raise RuntimeError(
            f"pretrained: weights {pretrained!r} for {architecture} are not available here ({error}). With no "
            "internet (or HF_HUB_OFFLINE=1) they must already be in the Hugging Face cache; otherwise download "
            "them where you have internet, or pass weights=PATH to a local file") from error
    model.eval()
    source = pretrained or (str(checkpoint.path) if checkpoint is not None else "random")
    return ClipModel(model=model, preprocess=preprocess, tokenizer=open_clip.get_tokenizer(architecture),
                     architecture=architecture, weights=source, activation=QUICK_GELU if use_quick_gelu else GELU)


def _weights_file(weights: str | os.PathLike) -> Path:
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights: no file at {path}; pass the path of a .bin, .safetensors or .pt file")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ValueError(f"weights: {path.name} has suffix {path.suffix!r}; use one of {', '.join(WEIGHT_SUFFIXES)}")
    return path


def _open_clip_file(checkpoint: _Checkpoint | None) -> str | None:
    """The file open_clip loads itself (with its conversions of other layouts): all but OpenAI's."""
    return str(checkpoint.path) if checkpoint is not None and not checkpoint.openai_layout else None


def _resolve_quick_gelu(architecture: str, pretrained: str | None, checkpoint: _Checkpoint | None,
                        requested: bool | None) -> bool:
    """QuickGELU or not: as requested, else as the weights were trained (see :func:`load_clip`)."""
    configured = bool(open_clip.get_model_config(architecture).get("quick_gelu", False))
    if requested is not None:
        return requested
    if pretrained is not None:
        return bool(open_clip.get_pretrained_cfg(architecture, pretrained).get("quick_gelu", configured))
    if checkpoint is None:
        return configured
    if checkpoint.from_openai:
        return True
    if not configured and "openai" in open_clip.list_pretrained_tags_by_model(architecture):
        log.warning("weights: building %s with GELU for %s; if these are OpenAI's weights (trained with QuickGELU) "
                    "pass quick_gelu=True (--quick-gelu)", architecture, checkpoint.path)
    return configured


@dataclass(frozen=True)
class _Checkpoint:
    """A weights file and what its contents say about where it comes from."""

    path: Path
    torchscript: bool
    openai_keys: bool

    @classmethod
    def inspect(cls, path: Path) -> _Checkpoint:
        torchscript = _is_torchscript(path)
        keys = set() if torchscript else _state_keys(path)
        return cls(path=path, torchscript=torchscript, openai_keys=any(key in keys for key in OPENAI_ONLY_KEYS))

    @property
    def from_openai(self) -> bool:
        """OpenAI's layout, or a file from one of the hub repositories of OpenAI's weights."""
        return self.openai_layout or any(part.endswith(OPENAI_HUB_SUFFIX) for part in self.path.parts)

    @property
    def openai_layout(self) -> bool:
        """OpenAI's own checkpoint format, which open_clip's file loading does not read."""
        return self.torchscript or self.openai_keys

    def load_into(self, model: torch.nn.Module) -> None:
        """Copy the weights of an :attr:`openai_layout` file into ``model`` (strictly: every
        parameter, no extra entry)."""
        log.info("weights: loading OpenAI's checkpoint %s (open_clip's 'initialized randomly' is before this)",
                 self.path)
        if self.torchscript:  # OpenAI's own .pt files: torch.load refuses TorchScript under weights_only
            state = torch.jit.load(str(self.path), map_location="cpu").state_dict()
        else:
            state = _torch_state_dict(self.path, mmap=False)
        model.load_state_dict({name: value for name, value in state.items() if name not in OPENAI_ONLY_KEYS})


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip holding ``constants.pkl``), read without loading it."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.rsplit("/", 1)[-1] == "constants.pkl" for name in archive.namelist())


def _state_keys(path: Path) -> set[str]:
    """The state dict's names without reading its tensors; empty when the file cannot tell
    (then loading it reports the problem)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                return set(handle.keys())
        return set(_torch_state_dict(path, mmap=True))
    except Exception:  # an unreadable file is reported by the load that follows
        return set()


def _torch_state_dict(path: Path, *, mmap: bool) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    return state.get("state_dict", state) if isinstance(state, dict) else {}
