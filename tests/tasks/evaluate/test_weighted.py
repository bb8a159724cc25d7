"""Bootstrap weights and the weighted classification/regression/rank metrics against scikit-learn."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, r2_score, roc_auc_score

from tasks.evaluate import regression, uncertainty
from tasks.evaluate.bootstrap import patient_weights, percentile_interval
from tasks.evaluate.ranking import weighted_auc


def test_patient_weights_resample_whole_patients():
    ids = np.array(["a", "a", "b", "c", "c", "c"])
    W = patient_weights(ids, 500, seed=1)
    assert W.shape == (501, 6) and (W[0] == 1).all()
    assert (W[:, 0] == W[:, 1]).all() and (W[:, 3] == W[:, 4]).all() and (W[:, 4] == W[:, 5]).all()
    patients_drawn = W[1:, [0, 2, 3]].sum(axis=1)
    assert (patients_drawn == 3).all()  # each resample draws as many patients as there are
    assert W[1:, 2].mean() == pytest.approx(1.0, abs=0.15)


def test_percentile_interval_ignores_the_point_row_and_nans():
    values = np.r_[100.0, np.arange(1000.0), np.nan]
    lo, hi = percentile_interval(values, 0.9)
    assert lo == pytest.approx(49.95) and hi == pytest.approx(949.05)


def test_weighted_auc_equals_sklearn_with_sample_weight():
    rng = np.random.default_rng(0)
    scores, labels = np.round(rng.normal(size=300), 1), rng.random(300) < 0.3
    W = rng.poisson(1.0, (5, 300)).astype(float)
    auc = weighted_auc(scores, W * labels, W * ~labels)
    for b in range(5):
        assert auc[b] == pytest.approx(roc_auc_score(labels, scores, sample_weight=W[b]), abs=1e-12)


def test_regression_metrics_equal_sklearn_with_sample_weight():
    rng = np.random.default_rng(1)
    y, p = rng.normal(size=200), rng.normal(size=200)
    W = rng.poisson(1.0, (4, 200)).astype(float)
    for b in range(4):
        assert regression.r2(y, p, W)[b] == pytest.approx(r2_score(y, p, sample_weight=W[b]), abs=1e-10)
        assert regression.mae(y, p, W)[b] == pytest.approx(mean_absolute_error(y, p, sample_weight=W[b]), abs=1e-12)


def classified_example(n: int = 500, seed: int = 0) -> uncertainty.Classified:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 3)) * 2
    labels = rng.integers(0, 3, n)
    logits[np.arange(n), labels] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return uncertainty.classified(probs, labels)


def test_accuracy_nll_brier_and_error_auroc_match_references():
    c = classified_example()
    W = np.ones((1, c.labels.size))
    assert uncertainty.accuracy(c, W)[0] == pytest.approx(accuracy_score(c.labels, c.predicted))
    assert uncertainty.nll(c, W)[0] == pytest.approx(log_loss(c.labels, c.probs), abs=1e-12)
    onehot = np.eye(3)[c.labels]
    assert uncertainty.brier(c, W)[0] == pytest.approx(((c.probs - onehot) ** 2).sum(axis=1).mean())
    expected = roc_auc_score(~c.correct, c.uncertainty)
    assert uncertainty.auroc_uncertainty_error(c, W)[0] == pytest.approx(expected, abs=1e-12)


def test_ece_matches_a_direct_loop_over_bins():
    c = classified_example(seed=2)
    edges = np.linspace(0, 1, 16)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (c.confidence > lo) & (c.confidence <= hi)
        if inside.any():
            total += inside.mean() * abs(c.correct[inside].mean() - c.confidence[inside].mean())
    assert uncertainty.ece(c, np.ones((1, c.labels.size)), 15)[0] == pytest.approx(total, abs=1e-12)


def test_abstention_reaches_the_target_accuracy_on_the_kept_cases():
    c = classified_example(seed=3)
    base = c.correct.mean()
    result = uncertainty.abstention(c, target_accuracy=0.95)
    kept = c.uncertainty <= result["abstain_threshold"]
    assert base < 0.95 <= c.correct[kept].mean() == pytest.approx(result["accuracy_retained"])
    assert result["abstain_rate"] == pytest.approx(1 - kept.mean())
    assert 0 < result["abstain_rate"] < 1


def test_ood_auroc_orders_out_of_distribution_uncertainty_above():
    assert uncertainty.ood_auroc(np.array([0.1, 0.2, 0.3]), np.array([0.25, 0.9])) == pytest.approx(5 / 6)
