"""scikit-learn estimators over the clipadapt primitives (needs scikit-learn installed):
:class:`LabelSpreading` and :class:`KMeans`, with scikit-learn's parameter names."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, ClusterMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from clipadapt.clustering import SPHERICAL_METRICS, assign, kmeans
from clipadapt.neighbors import knn
from clipadapt.propagation import label_propagation

__all__ = ["KMeans", "LabelSpreading"]


def _normalised_rows(scores: np.ndarray) -> np.ndarray:
    """max(scores, 0) scaled to rows summing to 1; rows with no positive score become uniform."""
    positive = np.maximum(scores, 0.0)
    totals = positive.sum(axis=1, keepdims=True)
    uniform = np.full_like(positive, 1.0 / positive.shape[1])
    return np.divide(positive, totals, out=uniform, where=totals > 0)


class LabelSpreading(ClassifierMixin, BaseEstimator):
    """Semi-supervised classifier: label spreading over the exact cosine k-NN graph.

    scikit-learn's ``semi_supervised.LabelSpreading`` (the normalised graph S = D^-1/2 W D^-1/2,
    clamping factor ``alpha``) with its parameter names and fitted attributes: ``y`` marks
    unlabelled samples with -1; after ``fit``, ``transduction_`` holds a label for every training
    sample and ``label_distributions_`` the normalised class scores. The graph is sparse (k
    neighbours per sample, cosine kernels) and (I - alpha S) F = Y is solved by block CG (see
    :func:`clipadapt.label_propagation`) instead of iterated.

    Parameters:
        n_neighbors: neighbours per sample (capped at n_samples - 1).
        alpha: clamping factor in (0, 1): how far labels spread.
        max_iter, tol: conjugate-gradient stopping rule per class.
        kernel: edge affinity, "shifted_cosine" ((1 + cos) / 2) ** gamma or "cosine_power"
            (max(cos, 0) ** gamma).
        gamma: kernel exponent.
        symmetrize: "mean" or "sum" of the graph and its transpose.
        dtype: "float64" or "float32" solve.
    """

    def __init__(self, n_neighbors: int = 20, alpha: float = 0.99, max_iter: int = 20, tol: float = 1e-6,
                 kernel: str = "shifted_cosine", gamma: float = 1.0, symmetrize: str = "mean",
                 dtype: str = "float64"):
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.kernel = kernel
        self.gamma = gamma
        self.symmetrize = symmetrize
        self.dtype = dtype

    def fit(self, X: Any, y: Any) -> "LabelSpreading":
        """Fit on X [n_samples, n_features] and y [n_samples] (-1 = unlabelled)."""
        X, y = validate_data(self, X, y, dtype=np.float32, ensure_min_samples=2)
        check_classification_targets(y)
        labelled = y != -1
        self.classes_ = np.unique(y[labelled])
        if self.classes_.size == 0:
            raise ValueError("y: no labelled sample; give at least one sample a class (not -1)")
        ids = np.full(y.shape[0], -1, dtype=np.int64)
        ids[labelled] = np.searchsorted(self.classes_, y[labelled])
        self._fit_neighbors = max(1, min(int(self.n_neighbors), X.shape[0] - 1))
        result = label_propagation(X, ids, k=self._fit_neighbors, alpha=self.alpha, kernel=self.kernel,
                                   gamma=self.gamma, symmetrize=self.symmetrize, max_iter=self.max_iter,
                                   tol=self.tol, dtype=self.dtype, n_classes=self.classes_.size)
        self.label_distributions_ = _normalised_rows(np.asarray(result.scores, dtype=np.float64))
        self.transduction_ = self.classes_[np.asarray(result.labels)]
        self.n_iter_ = int(np.max(result.iterations))
        self.X_ = X
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities [n, n_classes]: the kernel-weighted mean of the label
        distributions of each sample's k nearest training samples."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        cosines, neighbours = knn(X, self.X_, self._fit_neighbors, metric="cosine")
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
    """k-means clustering on the clipadapt kernels, with scikit-learn's ``KMeans`` parameters
    and fitted attributes (``cluster_centers_``, ``labels_``, ``inertia_``, ``n_iter_``).

    One initialisation per fit (scikit-learn's ``n_init=1``, its default with k-means++).

    Parameters:
        n_clusters: number of clusters.
        init: "k-means++" (also spelled "kmeans++"), "random" or an array [n_clusters, n_features].
        max_iter: at most this many Lloyd iterations.
        tol: stop once an iteration moves the centres by at most ``tol`` times the mean
            per-feature variance of X (in squared Euclidean distance summed over the centres),
            scikit-learn's rule; for "cosine" / "ip" the variance of the unit-length rows.
        random_state: None, an int or a ``numpy.random.RandomState``: the initialisation's seed.
        metric: "l2" (scikit-learn's objective), or "cosine" / "ip" for spherical k-means.
    """

    def __init__(self, n_clusters: int = 8, *, init: Any = "k-means++", max_iter: int = 300, tol: float = 1e-4,
                 random_state: Any = None, metric: str = "l2"):
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.metric = metric

    def fit(self, X: Any, y: Any = None) -> "KMeans":
        """Cluster X [n_samples, n_features]."""
        X = validate_data(self, X, dtype=np.float32)
        if isinstance(self.init, str):
            init = "kmeans++" if self.init == "k-means++" else self.init
        else:
            init = np.asarray(self.init, dtype=np.float32)
        result = kmeans(X, self.n_clusters, max_iter=self.max_iter, tol=self.tol * self._mean_variance(X),
                        metric=self.metric, init=init, seed=self._seed())
        self.cluster_centers_ = result.centroids
        self.labels_ = result.assignments
        self.inertia_ = float(result.inertia[-1])
        self.n_iter_ = result.n_iter
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest cluster centre of each row (ties to the lower index)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return assign(X, self.cluster_centers_, metric=self.metric)[1]

    def _mean_variance(self, X: np.ndarray) -> float:
        """Mean per-feature variance of the rows the centres live among (unit rows when spherical)."""
        rows = X.astype(np.float64)
        if self.metric in SPHERICAL_METRICS:
            norms = np.linalg.norm(rows, axis=1, keepdims=True)
            rows = rows / np.where(norms > 0, norms, 1.0)
        return float(np.mean(np.var(rows, axis=0)))

    def _seed(self) -> int:
        """``random_state`` itself when it is an integer, else an integer drawn from it."""
        if isinstance(self.random_state, numbers.Integral) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
