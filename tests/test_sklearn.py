"""The scikit-learn estimator: a real semi-supervised task and scikit-learn's estimator checks."""
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from clipadapt.sklearn import KMeans, LabelPropagation


def test_digits_with_ten_percent_labels():
    digits = load_digits()
    rng = np.random.default_rng(0)
    y = np.full(digits.target.shape, -1)
    labelled = rng.choice(len(y), size=len(y) // 10, replace=False)
    y[labelled] = digits.target[labelled]
    model = LabelPropagation(k=10).fit(digits.data, y)
    unlabelled = y == -1
    accuracy = np.mean(model.transduction_[unlabelled] == digits.target[unlabelled])
    assert accuracy > 0.9, f"transductive accuracy {accuracy:.3f}"
    assert model.label_distributions_.shape == (len(y), 10)
    np.testing.assert_allclose(model.label_distributions_.sum(1), 1.0)
    held_out = model.predict(digits.data[:200])
    assert np.mean(held_out == digits.target[:200]) > 0.9
    assert model.n_iter_ <= 20


@parametrize_with_checks([LabelPropagation(k=5)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_kmeans_estimator_on_digits():
    digits = load_digits()
    model = KMeans(n_clusters=10, n_iter=30, seed=0).fit(digits.data)
    assert model.cluster_centers_.shape == (10, 64) and model.labels_.shape == (1797,)
    np.testing.assert_array_equal(model.predict(digits.data), model.labels_)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(digits.target, model.labels_) > 0.5
    assert model.inertia_ > 0


@parametrize_with_checks([KMeans(n_clusters=3, n_iter=5)])
def test_kmeans_estimator_checks(estimator, check):
    check(estimator)
