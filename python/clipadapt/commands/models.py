"""The model options every method command shares: an open_clip architecture and where its weights come from."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from clipadapt._files import read_json


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--model``, ``--pretrained`` | ``--weights`` (one is required), ``--model-config`` and
    ``--quick-gelu`` | ``--no-quick-gelu``."""
    parser.add_argument("--model", required=True, help="open_clip architecture, e.g. ViT-L-14")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pretrained", help="open_clip pretrained tag, e.g. openai (downloaded or cached)")
    source.add_argument("--weights", help="local .bin / .safetensors / .pt weights file (open_clip's, or OpenAI's "
                        "own .pt)")
    parser.add_argument("--model-config", help="JSON file of a custom open_clip architecture named --model")
    parser.add_argument("--quick-gelu", action=argparse.BooleanOptionalAction, default=None,
                        help="build the towers with QuickGELU, the activation OpenAI's CLIP was trained with (or "
                        "GELU with --no-quick-gelu). Default: as the weights were trained: the tag's setting "
                        "(openai: QuickGELU); for --weights, QuickGELU for OpenAI's own checkpoint files and files "
                        "under a hub folder named *.openai, else --model's config. Give --quick-gelu for OpenAI "
                        "weights in open_clip's layout stored elsewhere")


def add_amp_argument(parser: argparse.ArgumentParser, *, released: str) -> None:
    """Add ``--amp fp16|bf16|off``: the precision of the forwards on a CUDA device (``released``
    says how the released code ran); read it back with :func:`amp_from_arguments`."""
    parser.add_argument("--amp", choices=("fp16", "bf16", "off"), default="fp16",
                        help=f"autocast on a CUDA device; fp16 is nearest to the released runs ({released}); off: "
                        "float32. CPU runs are float32")


def amp_from_arguments(args: argparse.Namespace) -> str | None:
    """The ``amp`` of a trainer config from ``--amp`` (None for off)."""
    return None if args.amp == "off" else args.amp


def load_model_from_arguments(args: argparse.Namespace, *, device: str = "cpu") -> Any:
    """The :class:`clipadapt.clip.ClipModel` that the :func:`add_model_arguments` options describe."""
    from clipadapt.clip import load_clip, register_model_config

    if args.model_config:
        register_model_config(args.model, read_json(Path(args.model_config), "fix the --model-config file"))
    return load_clip(args.model, pretrained=args.pretrained, weights=args.weights, device=device,
                     quick_gelu=args.quick_gelu)
