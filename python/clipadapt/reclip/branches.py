"""The two ReCLIP branches: which parameters train, and how text is encoded."""
from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

ClassName = str | Sequence[str]
"""A class's name, or all its synonyms (ensembled), as the released code's class lists."""
SynonymPrompt = Literal["released", "first"]


def layer_norm_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Weights and biases of every LayerNorm (and BatchNorm2d, for ResNets) inside ``module``."""
    norms = (nn.LayerNorm, nn.BatchNorm2d)
    return [p for m in module.modules() if isinstance(m, norms) for p in m.parameters(recurse=False)]


def visual_branch(model: nn.Module) -> tuple[nn.Module, list[nn.Parameter]]:
    """ReCLIP-V: the model with its own copy of the visual LayerNorms, which alone train."""
    return _branch(model, lambda m: layer_norm_parameters(m.visual))


def text_branch(model: nn.Module) -> tuple[nn.Module, list[nn.Parameter]]:
    """ReCLIP-T: the model with its own copy of the text-transformer LayerNorms and ``ln_final``,
    which alone train."""
    return _branch(model, lambda m: layer_norm_parameters(m.transformer) + list(m.ln_final.parameters()))


def _branch(model: nn.Module, trainable_of: Callable[[nn.Module], list[nn.Parameter]]
            ) -> tuple[nn.Module, list[nn.Parameter]]:
    """A copy of ``model`` in eval mode whose ``trainable_of`` parameters are its own and train;
    every other parameter and buffer is ``model``'s own tensor, frozen (``requires_grad=False``,
    also in ``model``), so the branches add only their LayerNorms to memory."""
    trainable = {id(p) for p in trainable_of(model)}
    shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers()) if id(t) not in trainable}
    branch = copy.deepcopy(model, memo=shared).eval()  # deepcopy returns the memo's objects themselves
    branch.requires_grad_(False)
    parameters = trainable_of(branch)
    for parameter in parameters:
        parameter.requires_grad_(True)
    return branch, parameters


def trained_state(branch: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters of ``branch`` that train, by name: all a checkpoint needs besides the model."""
    return {name: parameter.detach() for name, parameter in branch.named_parameters() if parameter.requires_grad}


def load_trained_state(branch: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy :func:`trained_state` back into ``branch``; ValueError when the names differ (another model)."""
    trained = {name: parameter for name, parameter in branch.named_parameters() if parameter.requires_grad}
    if set(state) != set(trained):
        raise ValueError("resume: the checkpoint's trained parameters do not match this model's LayerNorms; resume "
                         "with the same model, or start a new out_dir")
    with torch.no_grad():
        for name, value in state.items():
            trained[name].copy_(value)


def class_names(entry: ClassName) -> tuple[str, ...]:
    """The names (synonyms) of one class entry."""
    return (entry,) if isinstance(entry, str) else tuple(entry)


def single_template_prompts(template: str, classnames: Sequence[ClassName], synonym_prompt: SynonymPrompt) -> list[str]:
    """ReCLIP-T's one prompt per class, ``template.format(name)``. A class given by synonyms is
    formatted as the released code does, with the Python list itself (``"a photo of a ['happy',
    'smiling'] looking face."``; ``"released"``), or with its first synonym (``"first"``)."""
    if synonym_prompt not in ("released", "first"):
        raise ValueError(f"synonym_prompt: use 'released' or 'first', got {synonym_prompt!r}")
    return [template.format(entry if isinstance(entry, str) else
                            str(list(entry)) if synonym_prompt == "released" else class_names(entry)[0])
            for entry in classnames]


def encode_prompts(model: nn.Module, tokenizer: Any, prompts: Sequence[str], device: str) -> torch.Tensor:
    """L2-normalised text embeddings [len(prompts), D] (with gradients if any parameter trains)."""
    return F.normalize(model.encode_text(tokenizer(list(prompts)).to(device)).float(), dim=1)


@torch.no_grad()
def encode_ensemble(model: nn.Module, tokenizer: Any, classnames: Sequence[ClassName], templates: Sequence[str],
                    device: str) -> torch.Tensor:
    """The text-ensemble classifier [C, D]: per class, the normalised mean of the normalised
    embeddings of every template with every one of its names."""
    rows = [F.normalize(encode_prompts(model, tokenizer, [t.format(name) for t in templates
                                                          for name in class_names(entry)], device).mean(0), dim=0)
            for entry in classnames]
    return torch.stack(rows)
