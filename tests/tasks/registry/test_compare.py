"""Paired champion/challenger decisions on predictions whose quality is known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.evaluate.metrics import Task
from tasks.registry.compare import PromotionPolicy, compare

POLICY = PromotionPolicy(n_resamples=200)


def cohort(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    return pd.DataFrame({"patient_id": [f"P{i // 2:04d}" for i in range(n)], "instance_id": [f"I{i}" for i in range(n)],
                         "label": label.astype(str), "sex": np.where(np.arange(n) % 4 < 2, "F", "M"),
                         "_signal": label + rng.normal(0, 0.6, n), "_noise": rng.normal(0, 1, n)})  # fmt: skip


def classifier(frame: pd.DataFrame, logit: np.ndarray) -> pd.DataFrame:
    p = 1 / (1 + np.exp(-logit))
    return frame[["patient_id", "instance_id", "label", "sex"]].assign(prob_0=1 - p, prob_1=p)


def test_a_better_challenger_is_promoted_and_a_worse_one_refused_with_reasons():
    f = cohort()
    good, bad = classifier(f, 3 * (f["_signal"] - 0.5)), classifier(f, f["_noise"])
    promoted = compare(bad, good, Task.CLASSIFICATION, POLICY)
    assert promoted.promote and not promoted.reasons
    auroc = next(d for d in promoted.differences if d.metric == "auroc" and d.group == "all")
    assert auroc.challenger > auroc.champion and 0 < auroc.low < auroc.improvement < auroc.high
    assert {d.group for d in promoted.differences} == {"all", "sex=F", "sex=M"}

    refused = compare(good, bad, Task.CLASSIFICATION, POLICY)
    assert not refused.promote
    assert any(r.startswith("auroc: improvement lower bound") for r in refused.reasons)
    assert any("not better than the champion" in r for r in refused.reasons)


def test_a_challenger_that_is_as_good_is_not_promoted_without_a_better_point_estimate():
    f = cohort()
    same = classifier(f, 3 * (f["_signal"] - 0.5))
    decision = compare(same, same.copy(), Task.CLASSIFICATION, POLICY)
    assert not decision.promote and decision.reasons == [
        "auroc: point estimate 0.9313 is not better than the champion's 0.9313"
    ]  # identical predictions: every paired difference is 0, so non-inferior, but not better


def test_a_subgroup_that_worsens_blocks_promotion():
    f = cohort(seed=1)
    champion = classifier(f, 1.0 * (f["_signal"] - 0.5))
    women = (f["sex"] == "F").to_numpy()
    logit = np.where(women, 0.3 * (f["_signal"] - 0.5) + f["_noise"], 6 * (f["_signal"] - 0.5))
    decision = compare(champion, classifier(f, logit), Task.CLASSIFICATION, POLICY)
    assert not decision.promote
    assert any(r.startswith("subgroup sex=F: auroc worse") for r in decision.reasons)
    assert not any(r.startswith("subgroup sex=M") for r in decision.reasons)


def test_survival_compares_harrell_c_and_ibs_on_the_same_patients():
    rng = np.random.default_rng(2)
    n = 200
    risk = rng.normal(0, 1, n)
    time = rng.exponential(np.exp(-risk) * 300)
    event = (rng.random(n) < 0.8).astype(int)
    base = pd.DataFrame({"patient_id": [f"P{i:04d}" for i in range(n)], "instance_id": [f"I{i}" for i in range(n)],
                         "time": time, "event": event})  # fmt: skip
    grid = np.array([50.0, 100.0, 200.0, 400.0, 800.0])

    def model(r: np.ndarray) -> pd.DataFrame:
        surv = np.exp(-np.outer(np.exp(r), grid) / 300)
        return base.assign(risk=r, **{f"surv_{g:g}": surv[:, k] for k, g in enumerate(grid)})

    decision = compare(model(rng.normal(0, 1, n)), model(risk), Task.SURVIVAL, POLICY)
    overall = {d.metric: d for d in decision.differences if d.group == "all"}
    assert set(overall) == {"harrell_c", "ibs"} and decision.promote
    assert overall["harrell_c"].improvement > 0.1 and overall["ibs"].improvement > 0


def test_the_promotion_plots_draw_the_bootstrap_and_the_subgroups():
    from tasks.registry.plots import BOOTSTRAP, PAGE, SUBGROUPS, promotion_files

    f = cohort()
    good, bad = classifier(f, 3 * (f["_signal"] - 0.5)), classifier(f, f["_noise"])
    decision = compare(bad, good, Task.CLASSIFICATION, POLICY)
    assert set(decision.distributions) == {"auroc", "ece"} and decision.distributions["auroc"].shape == (200,)
    auroc = next(d for d in decision.differences if d.metric == "auroc" and d.group == "all")
    low, high = np.percentile(decision.distributions["auroc"], [2.5, 97.5])
    assert (low, high) == pytest.approx((auroc.low, auroc.high))  # the drawn samples are the interval's
    files = promotion_files("m v2 vs champion v1: promoted", decision, POLICY)
    assert set(files) == {BOOTSTRAP, SUBGROUPS, PAGE}
    widths = {}
    for name in (BOOTSTRAP, SUBGROUPS):
        assert files[name].startswith(b"\x89PNG\r\n\x1a\n")
        widths[name] = int.from_bytes(files[name][16:20], "big")  # IHDR width
    assert widths[BOOTSTRAP] > widths[SUBGROUPS]  # two metric panels side by side
    page = files[PAGE].decode()
    assert page.count("data:image/png;base64,") == 2 and "all criteria met" in page and "sex=F" in page
    assert promotion_files("nothing compared", type(decision)(False, ["no held-out patients"]), POLICY) == {}
