"""The predictions-table engine: flat keys, intervals, subgroups (checked against Fairlearn's MetricFrame)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame
from sklearn.metrics import accuracy_score, log_loss

from tasks.errors import InputError
from tasks.evaluate.metrics import Task, compute_metrics, detect_task
from tasks.evaluate.options import EvaluationOptions


def classification_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pid = rng.integers(0, 300, n)
    sex = np.array(["F", "M"])[rng.integers(0, 2, 300)][pid]
    labels = rng.integers(0, 2, n)
    strength = np.where(sex == "F", 2.5, 1.0)  # the model is better for one group
    logit = (labels * 2 - 1) * strength + rng.normal(size=n)
    p1 = 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"patient_id": pid.astype(str), "label": labels, "prob_0": 1 - p1, "prob_1": p1, "sex": sex,
                         "age_years": rng.uniform(20, 95, 300)[pid]})  # fmt: skip


def test_survival_keys_are_flat_with_intervals_beside(surv_frame):
    m = compute_metrics(surv_frame, EvaluationOptions(n_resamples=50, horizons=(90.0, 180.0))).metrics
    for key in ("harrell_c", "antolini_c_td", "ibs", "brier_90", "auc_180"):
        lo, hi = m[f"{key}_ci"]
        assert lo <= m[key] <= hi, key
    assert 0.6 < m["harrell_c"] < 0.9
    assert m["n__sex=F"] + m["n__sex=M"] == len(surv_frame)
    assert "harrell_c__sex=F" in m and "harrell_c__age_band=65-79" in m and "harrell_c__group=a" in m
    assert m["harrell_c_gap__sex"] == pytest.approx(abs(m["harrell_c__sex=F"] - m["harrell_c__sex=M"]))
    assert m["logrank_p"] < 1e-3 and m["calibration_error_180"] is not None


def test_subgroup_values_and_gap_match_fairlearn_metricframe():
    frame = classification_frame()
    result = compute_metrics(frame, EvaluationOptions(n_resamples=200, seed=1))
    m = result.metrics
    y, p = frame["label"].to_numpy(), frame[["prob_0", "prob_1"]].to_numpy()
    mf = MetricFrame(
        metrics={"accuracy": accuracy_score}, y_true=y, y_pred=p.argmax(1), sensitive_features=frame["sex"]
    )
    for group, value in mf.by_group["accuracy"].items():
        assert m[f"accuracy__sex={group}"] == pytest.approx(value, abs=1e-12)
    assert m["accuracy_gap__sex"] == pytest.approx(mf.difference()["accuracy"], abs=1e-12)
    nll = MetricFrame(
        metrics=lambda yt, yp: log_loss(yt, yp, labels=[0, 1]), y_true=y, y_pred=p, sensitive_features=frame["sex"]
    )
    assert m["nll__sex=M"] == pytest.approx(nll.by_group.loc["M"], abs=1e-9)
    lo, hi = m["accuracy_gap__sex_ci"]
    assert 0 < lo < m["accuracy_gap__sex"] < hi  # a real gap: the interval excludes zero
    assert "auroc" in m and "ece__age_band=80+" in m


def test_regression_and_task_detection():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"patient_id": np.arange(100).astype(str), "label": rng.normal(size=100)})
    frame["prediction"] = frame["label"] + rng.normal(scale=0.5, size=100)
    m = compute_metrics(frame, EvaluationOptions(n_resamples=100)).metrics
    assert detect_task(frame) is Task.REGRESSION and 0.5 < m["r2"] < 0.9 and m["mae_ci"][0] < m["mae"]
    with pytest.raises(InputError, match="neither survival"):
        detect_task(frame.drop(columns=["prediction"]))


def test_unknown_class_label_is_refused_without_quoting_values():
    frame = classification_frame(50).assign(label="secret-value")
    with pytest.raises(InputError) as info:
        compute_metrics(frame, EvaluationOptions(n_resamples=0))
    assert "secret-value" not in str(info.value)
