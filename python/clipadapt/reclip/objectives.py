"""ReCLIP's cross-modality self-training objectives and schedule."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

LOGIT_SCALE = 100.0  # fixed in the released code
VisualNormalisation = Literal["released", "mean"]


def epoch_count(n_images: int) -> int:
    """Training epochs for N target images: min(100, int(N / 5000 + 2))."""
    return min(100, int(n_images / 5000 + 2))


def centroid_logits(image_features: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """100 * f_img @ normalize_cols(W): ``classifier`` is [C, D] (rows are class vectors)."""
    return LOGIT_SCALE * image_features @ F.normalize(classifier, dim=1).T.to(image_features.dtype)


def combined_logits(text_logits: torch.Tensor, visual_logits: torch.Tensor) -> torch.Tensor:
    """The final prediction's logits: the average of the two branches' raw (x100) logits."""
    return 0.5 * (text_logits + visual_logits)


def agreement_mask(text_labels: torch.Tensor, visual_labels: torch.Tensor) -> torch.Tensor:
    """Samples whose two pseudo labels agree: the only training filter (no confidence threshold)."""
    return text_labels == visual_labels


def text_branch_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """sum_i m_i CE_i / sum_i m_i, or None when no sample agrees (the step is skipped)."""
    agreeing = mask.sum()
    if agreeing == 0:
        return None
    losses = F.cross_entropy(logits, targets, reduction="none")
    return (losses * mask).sum() / agreeing


def visual_branch_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                       normalisation: VisualNormalisation = "released") -> torch.Tensor | None:
    """The V-branch loss, or None when no sample agrees.

    ``"released"`` (default, faithful): mean_i(m_i CE_i) / sum m = sum m CE / (B sum m), the
    released code's extra 1/B factor. ``"mean"``: sum m CE / sum m, like the T branch.
    """
    if normalisation not in ("released", "mean"):
        raise ValueError(f"normalisation: use 'released' or 'mean', got {normalisation!r}")
    agreeing = mask.sum()
    if agreeing == 0:
        return None
    losses = F.cross_entropy(logits, targets, reduction="none") * mask
    return (losses.mean() if normalisation == "released" else losses.sum()) / agreeing
