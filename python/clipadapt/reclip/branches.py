"""The two ReCLIP branches (reclip.md §1): which parameters train, and how text is encoded."""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def layer_norm_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Weights and biases of every LayerNorm (and BatchNorm2d, for ResNets) inside ``module``."""
    norms = (nn.LayerNorm, nn.BatchNorm2d)
    return [p for m in module.modules() if isinstance(m, norms) for p in m.parameters(recurse=False)]


def visual_branch(model: nn.Module) -> tuple[nn.Module, list[nn.Parameter]]:
    """ReCLIP-V: a copy of the model whose visual LayerNorms alone train."""
    branch = copy.deepcopy(model).eval()
    branch.requires_grad_(False)
    trainable = layer_norm_parameters(branch.visual)
    for parameter in trainable:
        parameter.requires_grad_(True)
    return branch, trainable


def text_branch(model: nn.Module) -> tuple[nn.Module, list[nn.Parameter]]:
    """ReCLIP-T: a copy whose text-transformer LayerNorms and ``ln_final`` alone train."""
    branch = copy.deepcopy(model).eval()
    branch.requires_grad_(False)
    trainable = layer_norm_parameters(branch.transformer) + list(branch.ln_final.parameters())
    for parameter in trainable:
        parameter.requires_grad_(True)
    return branch, trainable


def encode_prompts(model: nn.Module, tokenizer: Any, prompts: Sequence[str], device: str) -> torch.Tensor:
    """L2-normalised text embeddings [len(prompts), D] (with gradients if any parameter trains)."""
    return F.normalize(model.encode_text(tokenizer(list(prompts)).to(device)).float(), dim=1)


@torch.no_grad()
def encode_ensemble(model: nn.Module, tokenizer: Any, classnames: Sequence[str], templates: Sequence[str],
                    device: str) -> torch.Tensor:
    """The text-ensemble classifier [C, D]: per class, the normalised mean of its normalised
    template embeddings."""
    rows = [F.normalize(encode_prompts(model, tokenizer, [t.format(name) for t in templates], device).mean(0), dim=0)
            for name in classnames]
    return torch.stack(rows)
