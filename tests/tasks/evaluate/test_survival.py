"""Survival metrics against independent implementations: scikit-survival, lifelines, pycox."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import concordance_index
from pycox.evaluation.concordance import concordance_td
from sksurv.metrics import brier_score, concordance_index_censored, cumulative_dynamic_auc, integrated_brier_score
from sksurv.util import Surv

from tasks.evaluate import survival
from tasks.evaluate.bootstrap import patient_weights
from tasks.evaluate.metrics import survival_grid


def arrays(frame):
    cols, grid = survival_grid(frame)
    return (
        frame["time"].to_numpy(float),
        frame["event"].to_numpy(bool),
        frame["risk"].to_numpy(float),
        frame[cols].to_numpy(float),
        grid,
    )


def test_harrell_matches_scikit_survival_with_tied_times_and_risks(surv_frame):
    t, d, r, _, _ = arrays(surv_frame)
    assert len(np.unique(t)) < len(t) and len(np.unique(r)) < len(r)  # the data really has ties
    assert survival.harrell_c(t, d, r)[0] == pytest.approx(concordance_index_censored(d, t, r)[0], abs=1e-12)


def test_harrell_matches_lifelines_without_ties():
    rng = np.random.default_rng(1)
    t, d, r = rng.exponential(100, 300), rng.random(300) < 0.7, rng.normal(size=300)
    assert survival.harrell_c(t, d, r)[0] == pytest.approx(concordance_index(t, -r, d), abs=1e-12)


def test_antolini_matches_pycox_adjusted(surv_frame):
    t, d, _, S, grid = arrays(surv_frame)
    idx = np.clip(np.searchsorted(grid, t, side="right") - 1, 0, len(grid) - 1)
    expected = concordance_td(t, d.astype(int), np.ascontiguousarray(S.T), idx, "adj_antolini")
    assert survival.antolini_c_td(t, d, S, grid, block=64)[0] == pytest.approx(expected, abs=1e-12)


def test_brier_ibs_and_auc_match_scikit_survival(surv_frame):
    t, d, r, S, grid = arrays(surv_frame)
    y = Surv.from_arrays(d, t)
    inside = grid < t.max()
    _, expected = brier_score(y, y, S[:, inside], grid[inside])
    np.testing.assert_allclose(survival.brier_scores(t, d, S[:, inside], grid[inside])[0], expected, atol=1e-12)
    ibs = survival.integrated_brier(t, d, S[:, inside], grid[inside])[0]
    assert ibs == pytest.approx(integrated_brier_score(y, y, S[:, inside], grid[inside]), abs=1e-12)
    for h in (60.0, 180.0, 365.0):
        auc, _ = cumulative_dynamic_auc(y, y, r, [h])
        assert survival.cumulative_dynamic_auc(t, d, r, h)[0] == pytest.approx(auc[0], abs=1e-12)


def test_every_bootstrap_row_equals_the_metric_on_the_expanded_resample(surv_frame):
    """Row b of the weight matrix must give exactly what the references compute on rows repeated w_b times."""
    t, d, r, S, grid = arrays(surv_frame)
    W = patient_weights(surv_frame["patient_id"].to_numpy(), 4, seed=3)
    harrell = survival.harrell_c(t, d, r, W, block=97)
    inside = grid < 400
    ibs = survival.integrated_brier(t, d, S[:, inside], grid[inside], W)
    auc = survival.cumulative_dynamic_auc(t, d, r, 180.0, W)
    for b in range(1, 5):
        rep = np.repeat(np.arange(len(t)), W[b].astype(int))
        y = Surv.from_arrays(d[rep], t[rep])
        assert harrell[b] == pytest.approx(concordance_index_censored(d[rep], t[rep], r[rep])[0], abs=1e-12)
        assert ibs[b] == pytest.approx(integrated_brier_score(y, y, S[rep][:, inside], grid[inside]), abs=1e-12)
        assert auc[b] == pytest.approx(cumulative_dynamic_auc(y, y, r[rep], [180.0])[0][0], abs=1e-12)
    assert np.ptp(harrell[1:]) > 0  # the resamples differ


def test_antolini_on_a_subsample_matches_pycox(surv_frame):
    """0/1 weights select rows; pycox on those rows must agree (copies never pair, so 0/1 is the exact case)."""
    t, d, _, S, grid = arrays(surv_frame)
    keep = np.random.default_rng(0).random(len(t)) < 0.6
    value = survival.antolini_c_td(t, d, S, grid, keep[None, :].astype(float))[0]
    idx = np.clip(np.searchsorted(grid, t[keep], side="right") - 1, 0, len(grid) - 1)
    expected = concordance_td(t[keep], d[keep].astype(int), np.ascontiguousarray(S[keep].T), idx, "adj_antolini")
    assert value == pytest.approx(expected, abs=1e-12)


def test_kaplan_meier_and_logrank_match_lifelines(surv_frame):
    t, d, r, _, _ = arrays(surv_frame)
    times, km = survival.kaplan_meier(t, d)
    kmf = KaplanMeierFitter().fit(t, d)
    np.testing.assert_allclose(km[0], kmf.survival_function_at_times(times).to_numpy(), atol=1e-12)
    groups = np.where(r > np.median(r), "high", np.where(r < 0, "low", "middle"))
    chi2, p = survival.logrank(t, d, groups)
    ref = multivariate_logrank_test(t, groups, d)
    assert chi2 == pytest.approx(ref.test_statistic, rel=1e-9)
    assert p == pytest.approx(ref.p_value, rel=1e-6)


def test_calibration_table_is_per_risk_decile(surv_frame):
    t, d, _, S, grid = arrays(surv_frame)
    table = survival.calibration_table(t, d, S[:, 3], grid[3])
    assert len(table) == 10 and table["n"].sum() == len(t)
    assert table["predicted"].is_monotonic_decreasing  # deciles ordered from lowest to highest risk
    assert ((table["observed"] >= 0) & (table["observed"] <= 1)).all()
