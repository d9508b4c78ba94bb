"""The scikit-learn estimator: a real semi-supervised task and scikit-learn's estimator checks."""
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from clipadapt.sklearn import LabelPropagation


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
