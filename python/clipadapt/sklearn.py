"""scikit-learn estimators over the clipadapt primitives (needs scikit-learn installed)."""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, ClusterMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from clipadapt.kmeans import assign, kmeans
from clipadapt.knn import knn
from clipadapt.label_propagation import label_propagation


def _normalised_rows(scores: np.ndarray) -> np.ndarray:
    """max(scores, 0) scaled to rows summing to 1; rows with no positive score become uniform."""
    positive = np.maximum(scores, 0.0)
    totals = positive.sum(axis=1, keepdims=True)
    uniform = np.full_like(positive, 1.0 / positive.shape[1])
    return np.divide(positive, totals, out=uniform, where=totals > 0)


class LabelPropagation(ClassifierMixin, BaseEstimator):
    """Semi-supervised classifier: label propagation over the exact cosine k-NN graph.

    Follows scikit-learn's ``semi_supervised.LabelPropagation`` interface: ``y`` marks
    unlabelled samples with -1; after ``fit``, ``transduction_`` holds a label for every
    training sample and ``label_distributions_`` the normalised class scores. The graph is sparse
    (k neighbours per sample) and the system is solved by block CG (see
    :func:`clipadapt.label_propagation`).

    Parameters:
        k: neighbours per sample (capped at n_samples - 1).
        alpha: propagation strength in (0, 1).
        kernel: "shifted_cosine" ((1 + cos) / 2) or "cosine_power" (max(cos, 0) ** gamma).
        gamma: kernel exponent.
        symmetrize: "mean" or "sum".
        max_iter, tol: conjugate-gradient stopping rule per class.
        precision: "float64" or "float32" solve.
    """

    def __init__(self, k: int = 20, alpha: float = 0.99, kernel: str = "shifted_cosine", gamma: float = 1.0,
                 symmetrize: str = "mean", max_iter: int = 20, tol: float = 1e-6, precision: str = "float64"):
        self.k = k
        self.alpha = alpha
        self.kernel = kernel
        self.gamma = gamma
        self.symmetrize = symmetrize
        self.max_iter = max_iter
        self.tol = tol
        self.precision = precision

    def fit(self, X: Any, y: Any) -> "LabelPropagation":
        """Fit on X [n_samples, n_features] and y [n_samples] (-1 = unlabelled)."""
        X, y = validate_data(self, X, y, dtype=np.float32, ensure_min_samples=2)
        check_classification_targets(y)
        labelled = y != -1
        self.classes_ = np.unique(y[labelled])
        if self.classes_.size == 0:
            raise ValueError("y: no labelled sample; give at least one sample a class (not -1)")
        ids = np.full(y.shape[0], -1, dtype=np.int64)
        ids[labelled] = np.searchsorted(self.classes_, y[labelled])
        k = max(1, min(int(self.k), X.shape[0] - 1))
        result = label_propagation(X, ids, k=k, alpha=self.alpha, kernel=self.kernel, gamma=self.gamma,
                                   symmetrize=self.symmetrize, max_iter=self.max_iter, tol=self.tol,
                                   precision=self.precision, n_classes=self.classes_.size)
        self.label_distributions_ = _normalised_rows(np.asarray(result.scores, dtype=np.float64))
        self.transduction_ = self.classes_[np.asarray(result.labels)]
        self.n_iter_ = int(np.max(result.iterations))
        self.X_fit_ = X
        self.k_fit_ = k
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities [n, n_classes]: the kernel-weighted mean of the label
        distributions of each sample's k nearest training samples."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        cosines, neighbours = knn(X, self.X_fit_, self.k_fit_, metric="cosine")
        if self.kernel == "shifted_cosine":
            weights = ((1.0 + cosines.astype(np.float64)) / 2.0) ** self.gamma
        else:
            weights = np.maximum(cosines.astype(np.float64), 0.0) ** self.gamma
        votes = np.einsum("nk,nkc->nc", weights, self.label_distributions_[neighbours])
        return _normalised_rows(votes)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row of X (ties to the first class)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class KMeans(ClusterMixin, BaseEstimator):
    """k-means clustering on the clipadapt kernels (``fit``, ``predict``, ``cluster_centers_``,
    ``labels_``, ``inertia_``), like scikit-learn's ``KMeans``.

    Parameters:
        n_clusters: number of clusters.
        n_iter: Lloyd iterations.
        metric: "l2" (scikit-learn's objective), or "cosine" / "ip" for spherical k-means.
        init: "kmeans++", "random" or an array [n_clusters, n_features].
        seed: random seed of the initialisation.
    """

    def __init__(self, n_clusters: int = 8, n_iter: int = 20, metric: str = "l2", init: Any = "kmeans++",
                 seed: int = 0):
        self.n_clusters = n_clusters
        self.n_iter = n_iter
        self.metric = metric
        self.init = init
        self.seed = seed

    def fit(self, X: Any, y: Any = None) -> "KMeans":
        """Cluster X [n_samples, n_features]."""
        X = validate_data(self, X, dtype=np.float32)
        init = self.init if isinstance(self.init, str) else np.asarray(self.init, dtype=np.float32)
        result = kmeans(X, self.n_clusters, n_iter=self.n_iter, metric=self.metric, init=init, seed=self.seed)
        self.cluster_centers_ = result.centroids
        self.labels_ = result.assignments
        self.inertia_ = float(result.inertia[-1])
        self.n_iter_ = self.n_iter
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest cluster centre of each row (ties to the lower index)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return assign(X, self.cluster_centers_, metric=self.metric)[1]
