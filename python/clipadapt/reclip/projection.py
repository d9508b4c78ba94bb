"""The ReCLIP projection: remove the dominant (class-agnostic) direction of the
text embeddings and everything outside their span."""
from __future__ import annotations

import torch

# The released code's --cut_dim default, and the value its comment gives for > 500 classes.
DEFAULT_CUT_DIM = 768
MANY_CLASSES_CUT_DIM = 250


def cut_dim_for(n_classes: int, cut_dim: int = DEFAULT_CUT_DIM) -> int:
    """``cut_dim`` for a dataset: 250 for more than 500 classes (so Birdsnap's exactly 500 keeps
    the default, as the code's comment reads), else ``cut_dim``."""
    return MANY_CLASSES_CUT_DIM if n_classes > 500 else cut_dim


def text_projection(text_embeddings: torch.Tensor, cut_dim: int = DEFAULT_CUT_DIM,
                    dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """P = U' U'^T from the uncentred SVD of the text embeddings, U' = U[:, 1:cut_dim].

    Args:
        text_embeddings: [C, D] class text embeddings (the released code's T is D x C).
        cut_dim: keep at most ``cut_dim - 1`` singular directions after dropping the first.
        dtype: storage dtype of P; float16 as in the released code.

    Returns:
        P [D, D] on the embeddings' device: the orthogonal projector onto span(e2 .. e_cut_dim).
    """
    if text_embeddings.ndim != 2:
        raise ValueError(f"text_embeddings: expected [C, D], got shape {tuple(text_embeddings.shape)}")
    if cut_dim < 2:
        raise ValueError(f"cut_dim: must be >= 2 to keep any direction, got {cut_dim}")
    u, _, _ = torch.linalg.svd(text_embeddings.T.float(), full_matrices=False)  # u: [D, min(D, C)]
    kept = u[:, 1:cut_dim]
    return (kept @ kept.T).to(dtype)
