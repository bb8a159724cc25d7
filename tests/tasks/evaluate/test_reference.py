"""Reference experiments on real data shipped inside packages (no download).

FLCHAIN (scikit-survival): classical Cox and the project's DeepSurv must land in the published band
(5 stratified 80/20 splits: C_td 0.784 ± 0.013, IBS 0.102); one split here to stay within the test budget,
so the check allows two standard deviations; ``bench/evaluate.py`` runs all five.
Digits (scikit-learn): the evidential model must reproduce the direction of Sensoy et al.'s experiments.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pycox.evaluation import EvalSurv

from tasks.evaluate import reference
from tasks.evaluate.compat import scipy_simps
from tasks.evaluate.metrics import compute_metrics, survival_grid
from tasks.evaluate.options import EvaluationOptions

C_TD_BAND = (0.784 - 2 * 0.013, 0.784 + 2 * 0.013)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_flchain_cox_and_deepsurv_land_in_the_published_band():
    features, labels = reference.load_flchain()
    assert len(labels) == 6524 and "chapter" not in features.columns
    split = reference.split(features, labels, seed=0)
    grid = reference.time_grid(split.test)
    for name, frame in (
        ("cox", reference.cox_predictions(split, grid)),
        ("deepsurv", reference.deepsurv_predictions(split, grid)),
    ):
        m = compute_metrics(frame, EvaluationOptions(n_resamples=0, horizons=())).metrics
        assert C_TD_BAND[0] < m["antolini_c_td"] < C_TD_BAND[1], (name, m["antolini_c_td"])
        assert 0.092 < m["ibs"] < 0.112, (name, m["ibs"])
        # the same inputs through pycox's EvalSurv: identical C_td; its IBS (Simpson rule, weights normalised
        # by their sum instead of n) differs by definition, but only slightly
        cols, days = survival_grid(frame)
        ev = EvalSurv(pd.DataFrame(frame[cols].to_numpy().T, index=days), frame["time"].to_numpy(),
                      frame["event"].to_numpy().astype(int), censor_surv="km")  # fmt: skip
        assert m["antolini_c_td"] == pytest.approx(ev.concordance_td(), abs=1e-12)
        with scipy_simps():
            assert m["ibs"] == pytest.approx(ev.integrated_brier_score(grid), abs=0.003)


def test_pycox_ibs_needs_the_shim_on_this_scipy():
    import scipy.integrate

    frame = pd.DataFrame(np.linspace(1, 0.2, 5)[:, None].repeat(4, axis=1), index=np.arange(5.0))
    ev = EvalSurv(frame, np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 0, 1, 1]), censor_surv="km")
    had_simps = hasattr(scipy.integrate, "simps")
    if not had_simps:
        with pytest.raises(AttributeError):
            ev.integrated_brier_score(np.arange(5.0))
    with scipy_simps():
        value = ev.integrated_brier_score(np.arange(5.0))
    expected = scipy.integrate.simpson(ev.brier_score(np.arange(5.0)).to_numpy(), x=np.arange(5.0)) / 4
    assert value == pytest.approx(expected)
    assert hasattr(scipy.integrate, "simps") is had_simps  # the shim leaves SciPy as it found it


@pytest.mark.slow
def test_evidential_digits_reproduce_sensoy_direction():
    f = reference.digits_experiment(seed=0, epochs=60)
    assert f.accuracy >= 0.95 and min(f.recall_per_class) > 0.8  # no dead classes
    rot = f.rotation.set_index("angle")
    assert f.flip_angle is not None and 10 <= f.flip_angle <= 40
    assert rot.loc[f.flip_angle, "uncertainty"] > 1.2 * rot.loc[0, "uncertainty"]
    assert rot.loc[f.flip_angle, "softmax_confidence"] > 0.6  # softmax does not say "I don't know" (chance: 0.1)
    assert f.entropy_out > f.entropy_in + 0.1 and f.auroc_ood > 0.8
