"""ReCLIP building blocks against the released code's rules: projection, pseudo labels, objectives."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clipadapt.bench.data import synthetic_clip
from clipadapt.reclip import (agreement_mask, centroid_logits, combined_logits, cut_dim_for, epoch_count,
                              propagate_pseudo_labels, pseudo_label_nodes, text_branch_loss, text_projection,
                              visual_branch_loss)


def text_embeddings(classes=10, d=32, seed=0):
    shared = torch.randn(d, generator=torch.Generator().manual_seed(seed))  # the common "redundant" direction
    specific = torch.randn(classes, d, generator=torch.Generator().manual_seed(seed + 1))
    return F.normalize(3 * shared + specific, dim=1)


def test_projection_is_an_orthogonal_projector_without_the_top_direction():
    t = text_embeddings()
    p = text_projection(t, dtype=torch.float32)
    assert p.shape == (32, 32)
    torch.testing.assert_close(p @ p, p, atol=1e-5, rtol=0)  # idempotent
    torch.testing.assert_close(p, p.T)
    u = torch.linalg.svd(t.T, full_matrices=False)[0]
    assert torch.linalg.norm(p @ u[:, 0]) < 1e-5  # e1 removed
    torch.testing.assert_close(p @ u[:, 1:10], u[:, 1:10], atol=1e-5, rtol=0)  # e2..eC kept
    assert torch.linalg.matrix_rank(p).item() == 9  # C - 1 directions for C < D


def test_projection_cut_dim_and_storage():
    t = text_embeddings(classes=20)
    assert torch.linalg.matrix_rank(text_projection(t, cut_dim=5, dtype=torch.float32)).item() == 4
    assert text_projection(t).dtype == torch.float16
    assert cut_dim_for(1000) == 250 and cut_dim_for(500) == 768 and cut_dim_for(10) == 768
    with pytest.raises(ValueError, match="cut_dim"):
        text_projection(t, cut_dim=1)


def svd_projector(t, cut_dim):
    """U' U'^T from the float64 SVD: the reference for either way text_projection computes P."""
    u = torch.linalg.svd(t.T.double(), full_matrices=False)[0][:, 1:cut_dim]
    return u @ u.T


@pytest.mark.parametrize("classes,d,cut_dim", [(10, 32, 768), (40, 32, 768), (32, 32, 768), (2, 16, 768),
                                               (20, 32, 5), (500, 64, 250)])
def test_projection_equals_the_float64_svd_projector(classes, d, cut_dim):
    """Q Q^T - u1 u1^T (QR) when every direction after the first is kept, the float32 SVD
    otherwise: both the float64 SVD's projector to float32 accuracy."""
    t = text_embeddings(classes=classes, d=d, seed=classes)
    p = text_projection(t, cut_dim=cut_dim, dtype=torch.float32)
    torch.testing.assert_close(p.double(), svd_projector(t, cut_dim), atol=2e-5, rtol=0)


def test_projection_with_two_close_top_singular_values():
    """Random unit embeddings (no shared direction): sigma_1 and sigma_2 within 1%, so u1 is
    barely determined; the top eigenvector of R R^T in float64 still finds the float64 SVD's."""
    t = F.normalize(torch.randn(300, 128, generator=torch.Generator().manual_seed(3)), dim=1)
    s = torch.linalg.svdvals(t.double())
    assert s[1] / s[0] > 0.95
    torch.testing.assert_close(text_projection(t, dtype=torch.float32).double(), svd_projector(t, 768),
                               atol=5e-5, rtol=0)


def test_projection_refuses_non_finite_embeddings():
    t = text_embeddings()
    t[3, 4] = float("nan")
    with pytest.raises(ValueError, match="text_embeddings: contains NaN"):
        text_projection(t)


def test_top_eigenvector_of_symmetric_matrices():
    from clipadapt._native import _core

    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 64):
        m = rng.standard_normal((n, n))
        m = m + m.T
        values, vectors = np.linalg.eigh(m)
        v = _core.top_eigenvector(m)
        assert v.shape == (n,) and abs(abs(v @ vectors[:, -1]) - 1) < 1e-12
    for bad, words in ((np.zeros((2, 3)), "square"), (np.full((2, 2), np.nan), "NaN")):
        with pytest.raises(ValueError, match=words):
            _core.top_eigenvector(bad)


def clustered(classes=6, n=600, d=32, seed=0):
    candidates, candidate_classes = synthetic_clip(300, d, n_classes=classes, modality="text", noise=0.0, seed=seed)
    text = torch.from_numpy(candidates[np.unique(candidate_classes, return_index=True)[1]])
    images, truth = synthetic_clip(n, d, n_classes=classes, modality="image", noise=0.8, seed=seed)
    return text, torch.from_numpy(images), torch.from_numpy(truth)


def test_pseudo_labels_put_text_nodes_first_and_label_images_in_order():
    text, images, truth = clustered()
    pseudo = propagate_pseudo_labels(text, images, text_projection(text), with_centroids=True)
    assert pseudo.node_labels.shape == (606,) and pseudo.labels.shape == (600,)
    assert pseudo.node_labels[:6].tolist() == list(range(6))  # each text node keeps its own class
    torch.testing.assert_close(pseudo.labels, pseudo.node_labels[6:])
    assert (pseudo.labels == truth).float().mean() > 0.9
    # Shuffling the images permutes their labels the same way: labels follow dataset order.
    order = torch.randperm(600, generator=torch.Generator().manual_seed(3))
    shuffled = propagate_pseudo_labels(text, images[order], text_projection(text))
    assert (shuffled.labels == pseudo.labels[order]).float().mean() > 0.99


def test_pseudo_label_nodes_project_in_float16_each_entry_exactly_rounded():
    """The released float16 product [text; images] @ P, each entry the float64 dot rounded once
    to float16 (within torch's float32-summed matmul's error of it), normalised in float16."""
    text, images, _ = clustered()
    projection = text_projection(text)
    nodes = torch.cat([text, images]).half()
    exact = torch.from_numpy((nodes.double().numpy() @ projection.double().numpy()).astype(np.float16))
    assert torch.equal(pseudo_label_nodes(text, images, projection), F.normalize(exact, dim=1).float())
    torch.testing.assert_close(exact, nodes @ projection, atol=1e-3, rtol=2e-3)


def test_centroids_average_unprojected_features_including_text_nodes():
    text, images, _ = clustered()
    pseudo = propagate_pseudo_labels(text, images, text_projection(text), with_centroids=True)
    nodes = torch.cat([text, images])
    for c in range(6):
        want = F.normalize(nodes[pseudo.node_labels == c].mean(0), dim=0)
        torch.testing.assert_close(pseudo.centroids[c].float(), want, atol=1e-3, rtol=0)
    assert pseudo.centroids.dtype == torch.float16


def test_an_empty_class_gets_nan_as_released_or_its_text_node():
    from clipadapt.reclip.pseudo_labels import _centroids

    text = F.normalize(torch.randn(3, 8), dim=1)
    nodes = torch.cat([text, F.normalize(torch.randn(5, 8), dim=1)])
    labels = torch.tensor([0, 1, 0, 0, 1, 1, 0, 1])  # no node predicted as class 2
    released = _centroids(nodes, labels, text, "nan")
    assert torch.isnan(released[2].float()).all() and torch.isfinite(released[:2].float()).all()
    kept = _centroids(nodes, labels, text, "text")
    torch.testing.assert_close(kept[2].float(), text[2], atol=1e-3, rtol=0)


def test_agreement_mask_and_loss_normalisations():
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    text_labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    visual_labels = torch.tensor([0, 1, 0, 3, 0, 0, 4, 2])
    mask = agreement_mask(text_labels, visual_labels)
    assert mask.tolist() == [True, True, False, True, False, True, False, True]
    ce = F.cross_entropy(logits, text_labels, reduction="none")
    t_loss = text_branch_loss(logits, text_labels, mask)
    torch.testing.assert_close(t_loss, ce[mask].sum() / 5)
    released = visual_branch_loss(logits, text_labels, mask)
    torch.testing.assert_close(released, ce[mask].sum() / (8 * 5))  # the extra 1/B of the released code
    torch.testing.assert_close(visual_branch_loss(logits, text_labels, mask, normalisation="mean"), t_loss)
    nobody = torch.zeros(8, dtype=torch.bool)
    assert text_branch_loss(logits, text_labels, nobody) is None
    assert visual_branch_loss(logits, text_labels, nobody) is None


def test_centroid_classifier_and_combined_logits():
    features = F.normalize(torch.randn(4, 16), dim=1)
    classifier = torch.randn(3, 16) * 5  # rows need not be unit: they are normalised
    logits = centroid_logits(features, classifier)
    torch.testing.assert_close(logits, 100 * features @ F.normalize(classifier, dim=1).T)
    torch.testing.assert_close(combined_logits(torch.ones(2, 3), 3 * torch.ones(2, 3)), 2 * torch.ones(2, 3))


@pytest.mark.parametrize("n,epochs", [(1000, 2), (4999, 2), (10_000, 4), (50_000, 12), (27_000, 7), (10**7, 100)])
def test_epoch_count_rule(n, epochs):
    assert epoch_count(n) == epochs
