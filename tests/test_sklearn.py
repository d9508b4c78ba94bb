"""The scikit-learn estimators: a real semi-supervised task, k-means on digits, and scikit-learn's
estimator checks."""
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

import clipadapt
from clipadapt.sklearn import KMeans, LabelSpreading


def test_digits_with_ten_percent_labels():
    digits = load_digits()
    rng = np.random.default_rng(0)
    y = np.full(digits.target.shape, -1)
    labelled = rng.choice(len(y), size=len(y) // 10, replace=False)
    y[labelled] = digits.target[labelled]
    model = LabelSpreading(n_neighbors=10).fit(digits.data, y)
    unlabelled = y == -1
    accuracy = np.mean(model.transduction_[unlabelled] == digits.target[unlabelled])
    assert accuracy > 0.9, f"transductive accuracy {accuracy:.3f}"
    assert model.label_distributions_.shape == (len(y), 10)
    np.testing.assert_allclose(model.label_distributions_.sum(1), 1.0)
    held_out = model.predict(digits.data[:200])
    assert np.mean(held_out == digits.target[:200]) > 0.9
    assert model.n_iter_ <= 20


@parametrize_with_checks([LabelSpreading(n_neighbors=5)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_kmeans_estimator_on_digits():
    digits = load_digits()
    model = KMeans(n_clusters=10, max_iter=30, random_state=0).fit(digits.data)
    assert model.cluster_centers_.shape == (10, 64) and model.labels_.shape == (1797,)
    np.testing.assert_array_equal(model.predict(digits.data), model.labels_)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(digits.target, model.labels_) > 0.5
    assert isinstance(model.inertia_, float) and model.inertia_ > 0
    assert isinstance(model.n_iter_, int) and 1 <= model.n_iter_ <= 30


def test_kmeans_tol_is_relative_to_the_data_variance_as_in_scikit_learn():
    x = load_digits().data.astype(np.float32)
    loose, strict = (KMeans(n_clusters=10, max_iter=300, tol=tol, random_state=3).fit(x) for tol in (1e-1, 0.0))
    assert loose.n_iter_ < strict.n_iter_ < 300  # tol 0: until the centres stop moving
    tol = 1e-1 * float(np.var(x.astype(np.float64), axis=0).mean())
    direct = clipadapt.kmeans(x, 10, max_iter=300, tol=tol, metric="l2", seed=3)
    assert direct.n_iter == loose.n_iter_
    np.testing.assert_array_equal(direct.centroids, loose.cluster_centers_)


def test_kmeans_takes_scikit_learns_init_names_and_random_states():
    x = load_digits().data[:300]
    by_int = KMeans(n_clusters=4, init="k-means++", random_state=7).fit(x)
    np.testing.assert_array_equal(by_int.cluster_centers_,
                                  KMeans(n_clusters=4, init="kmeans++", random_state=7).fit(x).cluster_centers_)
    drawn = KMeans(n_clusters=4, random_state=np.random.RandomState(7)).fit(x)
    assert drawn.cluster_centers_.shape == (4, 64)


@parametrize_with_checks([KMeans(n_clusters=3, max_iter=5)])
def test_kmeans_estimator_checks(estimator, check):
    check(estimator)
