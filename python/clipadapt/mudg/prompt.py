"""MUDG's text side: a CLIP whose prompt context words ("a photo of") are
learnable vectors (CoOp-style shallow prompt)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from clipadapt.clip._torchvision import import_torchvision
from clipadapt.mudg import augment

import_torchvision()
import open_clip  # noqa: E402

# Text pooling rules whose end-of-text position follows from the token ids.
_POOLINGS = ("argmax", "eos")


def check_template(template: str, context: str) -> None:
    """A template MUDG can fine-tune with: valid for :func:`augmented_prompt` and starting with
    the learnable context words."""
    augment.check_template(template)
    if not template.startswith(context):
        raise ValueError(f"template: {template!r} must start with the learnable context {context!r} "
                         "(or set the config's context to the template's first words)")


def check_standard_clip(model: nn.Module) -> None:
    """Raise unless ``model`` is open_clip's ``CLIP`` with a ViT image tower: MUDG replaces token
    embeddings inside the text tower and trains named blocks of both towers."""
    if not isinstance(model, open_clip.CLIP):
        raise TypeError(f"clip: MUDG needs open_clip's standard CLIP (text tower inside the model), got "
                        f"{type(model).__name__}; CustomTextCLIP / CoCa / Hugging Face text towers are not supported")
    if model.text_pool_type not in _POOLINGS:
        raise TypeError(f"clip: text pooling {model.text_pool_type!r} is not supported (need one of {_POOLINGS})")
    visual = model.visual
    if not all(hasattr(visual, name) for name in ("transformer", "proj", "ln_post")):
        raise TypeError(f"clip: MUDG trains the last blocks of a ViT image tower; {type(visual).__name__} "
                        "has no transformer/proj/ln_post (ResNet and timm towers are not supported)")


def end_positions(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Index of each row's end-of-text token (int64 [n]), by the model's text pooling rule."""
    if model.text_pool_type == "argmax":
        return tokens.argmax(dim=-1)
    return (tokens == model.text_eos_id).int().argmax(dim=-1)


def context_token_ids(model: nn.Module, tokenizer: Any, context: str) -> torch.Tensor:
    """The start token followed by the context's tokens (int64 [1 + n_ctx], CPU)."""
    tokens = tokenizer([context])
    end = int(end_positions(model, tokens)[0])
    if end < 2:
        raise ValueError(f"context: {context!r} has no tokens; give the words every template starts with")
    return tokens[0, :end].clone()


def tokenize_prompts(tokenizer: Any, prompts: Sequence[str], context_ids: torch.Tensor) -> torch.Tensor:
    """Token ids (int64 [len(prompts), context_length], CPU), after checking that each prompt
    starts with ``context_ids`` (so that :class:`PromptedCLIP` replaces exactly those)."""
    tokens = tokenizer(list(prompts))
    mismatched = (tokens[:, :context_ids.numel()] != context_ids).any(dim=1).nonzero().flatten()
    if mismatched.numel():
        raise ValueError(f"template: the prompt {prompts[int(mismatched[0])]!r} does not tokenise to the learnable "
                         "context's tokens followed by the rest; start the template with the context words and a space")
    return tokens


class PromptedCLIP(nn.Module):
    """An open_clip CLIP whose first ``n_ctx`` text tokens after the start token are learnable.

    ``context`` (float [n_ctx, width], the token embedding's dtype) starts as the token
    embeddings of ``context_ids[1:]`` (from :func:`context_token_ids`), so at initialisation
    :meth:`encode_text` equals the model's own ``encode_text`` on prompts that start with those
    tokens (:func:`tokenize_prompts`). The context replaces the embeddings before the first text
    layer, so its gradient flows through every text layer whether or not that layer trains.
    """

    def __init__(self, model: nn.Module, context_ids: torch.Tensor):
        super().__init__()
        check_standard_clip(model)
        self.model = model
        weight = model.token_embedding.weight
        with torch.no_grad():
            initial = model.token_embedding(context_ids[1:].to(weight.device))
        self.context = nn.Parameter(initial.detach().clone())

    @property
    def n_ctx(self) -> int:
        return self.context.shape[0]

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Text features (unnormalised, [n, D]) of token ids [n, context_length] with the
        learnable context in place of the context words: the steps of open_clip's
        ``CLIP.encode_text``."""
        model = self.model
        cast_dtype = model.transformer.get_cast_dtype()
        embedded = model.token_embedding(tokens).to(cast_dtype)
        context = self.context.to(cast_dtype).unsqueeze(0).expand(tokens.shape[0], -1, -1)
        x = torch.cat([embedded[:, :1], context, embedded[:, 1 + self.n_ctx:]], dim=1)
        x = x + model.positional_embedding.to(cast_dtype)
        x = model.transformer(x, attn_mask=model.attn_mask)
        x = model.ln_final(x)
        x = open_clip.transformer.text_global_pool(x, tokens, model.text_pool_type,
                                                   eos_token_id=getattr(model, "text_eos_id", None))
        if isinstance(model.text_projection, nn.Linear):
            return model.text_projection(x)
        return x if model.text_projection is None else x @ model.text_projection

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Image features (unnormalised, [n, D]) of preprocessed images [n, 3, H, W]."""
        return self.model.encode_image(images)
