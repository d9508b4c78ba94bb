"""The ReCLIP projection: remove the dominant (class-agnostic) direction of the
text embeddings and everything outside their span."""
from __future__ import annotations

import torch

from clipadapt._native import _core

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

    When ``cut_dim`` keeps every direction after the first (``cut_dim >= min(C, D)``, the
    released default), P is the projector onto the embeddings' span minus the top direction's,
    computed as Q Q^T - u1 u1^T from a Householder QR T^T = Q R, with u1 = Q v1 and v1 the top
    eigenvector of R R^T in float64: the SVD's projector (a float32 SVD is no closer to the
    float64 one) in about half its time, and u1 is better determined than the float32 SVD's when
    the top singular values are close. Otherwise P comes from the float32 SVD, as released.

    Args:
        text_embeddings: [C, D] class text embeddings (the released code's T is D x C), finite.
        cut_dim: keep at most ``cut_dim - 1`` singular directions after dropping the first.
        dtype: storage dtype of P; float16 as in the released code.

    Returns:
        P [D, D] on the embeddings' device: the orthogonal projector onto span(e2 .. e_cut_dim).
        Embeddings of rank below min(C, D) leave some of those directions to the factorisation
        (the SVD's U or the QR's Q), as in the released code.
    """
    if text_embeddings.ndim != 2:
        raise ValueError(f"text_embeddings: expected [C, D], got shape {tuple(text_embeddings.shape)}")
    if cut_dim < 2:
        raise ValueError(f"cut_dim: must be >= 2 to keep any direction, got {cut_dim}")
    columns = text_embeddings.T.float()  # [D, C]
    if not bool(torch.isfinite(columns).all()):
        raise ValueError("text_embeddings: contains NaN or Inf; the projection needs finite embeddings")
    if cut_dim >= min(columns.shape) >= 2:
        return _span_without_top_direction(columns).to(dtype)
    u, _, _ = torch.linalg.svd(columns, full_matrices=False)  # u: [D, min(D, C)]
    kept = u[:, 1:cut_dim]
    return (kept @ kept.T).to(dtype)


def _span_without_top_direction(columns: torch.Tensor) -> torch.Tensor:
    """Q Q^T - u1 u1^T for columns [D, C] = Q R (reduced): the projector onto their span less its
    top left singular direction u1 = Q v1, v1 the top eigenvector of R R^T (float64, on the CPU:
    a min(C, D)-square matrix)."""
    q, r = torch.linalg.qr(columns)  # q [D, k], r [k, C], k = min(D, C)
    r64 = r.double()
    v1 = _core.top_eigenvector((r64 @ r64.T).cpu().numpy())
    u1 = q @ torch.from_numpy(v1).to(device=q.device, dtype=q.dtype)
    return q @ q.T - torch.outer(u1, u1)
