"""ReCLIP's label-propagation pseudo labels, through clipadapt's sparse label propagation.

Nodes are [text nodes (class c seeded at node c); image features in dataset order]. They are
projected with P (a float16 product, as the released code, each entry exactly rounded by
:func:`clipadapt.exact_matmul`), L2-normalised in float16, linked by an exact 20-NN
graph with (1 + cos) / 2 affinities, symmetrised by averaging and normalised; (I - alpha S) F = Y
is solved by block CG (float64, 20 iterations, tol 1e-6). Same pseudo labels as the dense
recipe, without its M x M matrices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from clipadapt import _validate
from clipadapt.linalg import exact_matmul
from clipadapt.neighbors import KnnGraph, knn_graph
from clipadapt.propagation import CsrMatrix, Dtype, label_propagation

EmptyCentroid = Literal["nan", "text"]
EMPTY_CENTROIDS: tuple[str, ...] = ("nan", "text")


@dataclass(frozen=True)
class PseudoLabels:
    """The pseudo labels of one branch's label propagation over the C text nodes and N images.

    Attributes:
        labels: int64 [N] pseudo label of each image (node order = dataset order).
        confidence: float64 [N] 1 - H(p)/log C of each image (logged, not used for training).
        centroids: [C, D] per-class mean of the unprojected features of every node (text nodes
            included) predicted as that class, L2-normalised, stored as float16 (the released V
            classifier). None unless requested.
        node_labels: int64 [C + N] argmax of every node, text nodes first.
    """

    labels: torch.Tensor
    confidence: torch.Tensor
    centroids: torch.Tensor | None
    node_labels: torch.Tensor


def propagate_pseudo_labels(text_nodes: torch.Tensor, image_features: torch.Tensor, projection: torch.Tensor, *,
                            k: int = 20, alpha: float = 0.99, max_iter: int = 20, tol: float = 1e-6,
                            dtype: Dtype = "float64", with_centroids: bool = False,
                            empty_centroid: EmptyCentroid = "nan") -> PseudoLabels:
    """ReCLIP's label propagation step: :func:`pseudo_label_nodes`, their exact cosine k-NN graph,
    then :func:`pseudo_labels_from_graph`.

    Args:
        text_nodes: [C, D] labelled nodes (text embeddings), class c at row c.
        image_features: [N, D] image features.
        projection: [D, D] from :func:`clipadapt.reclip.text_projection`.
        k: neighbours per node in the graph.
        alpha, max_iter, tol, dtype: the propagation (see :func:`clipadapt.label_propagation`).
        with_centroids: also compute the cluster centroids (the V branch's classifier).
        empty_centroid: a class that no node is predicted as gets a NaN centroid (``"nan"``,
            what the released code does) or keeps its text node's embedding (``"text"``).
    """
    _validate.choice(empty_centroid, "empty_centroid", EMPTY_CENTROIDS)
    graph = knn_graph(pseudo_label_nodes(text_nodes, image_features, projection), k, metric="cosine")
    return pseudo_labels_from_graph(graph, text_nodes, image_features, alpha=alpha, max_iter=max_iter, tol=tol,
                                    dtype=dtype, with_centroids=with_centroids, empty_centroid=empty_centroid)


def pseudo_label_nodes(text_nodes: torch.Tensor, image_features: torch.Tensor,
                       projection: torch.Tensor) -> torch.Tensor:
    """The graph's nodes, text nodes first: [text_nodes; image_features] projected with P in
    float16 and L2-normalised in float16, as released; float32 [C + N, D] on the text nodes' device.

    The float16 product is :func:`clipadapt.exact_matmul`: each entry the exact float64 dot
    rounded once to float16 (torch's float16 matmul sums in float32, so it may differ from
    it in the last bits), the same bits on any machine, BLAS kernel or device, and fast on the CPU,
    where torch's float16 matmul is slow."""
    if text_nodes.shape[1] != image_features.shape[1] or projection.shape != (text_nodes.shape[1],) * 2:
        raise ValueError("text_nodes, image_features and projection: dimensions disagree "
                         f"({tuple(text_nodes.shape)}, {tuple(image_features.shape)}, {tuple(projection.shape)})")
    nodes = _unprojected_nodes(text_nodes, image_features)
    projected = exact_matmul(nodes.half(), projection.to(device=nodes.device, dtype=torch.float16))
    return torch.nn.functional.normalize(projected, dim=1).float()


def pseudo_labels_from_graph(graph: KnnGraph | CsrMatrix, text_nodes: torch.Tensor, image_features: torch.Tensor,
                             *, alpha: float = 0.99, max_iter: int = 20, tol: float = 1e-6, dtype: Dtype = "float64",
                             with_centroids: bool = False, empty_centroid: EmptyCentroid = "nan") -> PseudoLabels:
    """The pseudo labels of :func:`propagate_pseudo_labels` given the k-NN graph of its
    :func:`pseudo_label_nodes` (or that graph's normalised affinity S, from
    :func:`clipadapt.affinity`): class c seeded at node c, then
    :func:`clipadapt.label_propagation`. Arguments as :func:`propagate_pseudo_labels`."""
    _validate.choice(empty_centroid, "empty_centroid", EMPTY_CENTROIDS)
    classes = text_nodes.shape[0]
    n = classes + image_features.shape[0]
    seeds = torch.full((n,), -1, dtype=torch.int64, device=text_nodes.device)
    seeds[:classes] = torch.arange(classes, device=text_nodes.device)
    result = label_propagation(graph, seeds, alpha=alpha, max_iter=max_iter, tol=tol, dtype=dtype,
                               n_classes=classes)
    centroids = None
    if with_centroids:
        nodes = _unprojected_nodes(text_nodes, image_features).float()
        centroids = _centroids(nodes, result.labels, text_nodes, empty_centroid)
    return PseudoLabels(labels=result.labels[classes:], confidence=result.confidence[classes:], centroids=centroids,
                        node_labels=result.labels)


def _unprojected_nodes(text_nodes: torch.Tensor, image_features: torch.Tensor) -> torch.Tensor:
    return torch.cat([text_nodes, image_features.to(text_nodes.dtype)])


def _centroids(nodes: torch.Tensor, labels: torch.Tensor, text_nodes: torch.Tensor,
               empty_centroid: EmptyCentroid) -> torch.Tensor:
    classes = text_nodes.shape[0]
    sums = torch.zeros((classes, nodes.shape[1]), dtype=torch.float32, device=nodes.device)
    sums.index_add_(0, labels, nodes)
    counts = torch.bincount(labels, minlength=classes).to(torch.float32)
    means = sums / counts[:, None]  # 0 / 0 = NaN for an empty class, as released
    if empty_centroid == "text":
        means = torch.where(counts[:, None] > 0, means, text_nodes.float())
    return torch.nn.functional.normalize(means, dim=1).half()
