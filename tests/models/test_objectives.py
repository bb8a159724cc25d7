"""Task objectives: label encodings fitted on the training split, prediction columns, state round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sksurv.linear_model.coxph import BreslowEstimator

from models.heads import build_objective, objective_from_state


def _survival_labels(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"duration": rng.integers(5, 2000, n).astype(float), "event": (rng.random(n) < 0.6) * 1.0})


@pytest.mark.parametrize("head", ["coxph", "logistic-hazard", "deephit"])
def test_survival_heads_give_monotone_curves_and_survive_a_round_trip(head: str) -> None:
    labels = _survival_labels()
    obj = build_objective("survival", head, num_durations=10)
    obj.fit(labels)
    if head == "coxph":
        obj.fit_baseline(
            np.random.default_rng(1).normal(size=60), labels["duration"].to_numpy(), labels["event"].to_numpy()
        )
    batch = {k: torch.as_tensor(v[:16]) for k, v in obj.encode(labels).items()}
    out = torch.randn(16, obj.out_features, requires_grad=True)
    loss = obj.loss(out, batch)
    loss.backward()
    assert torch.isfinite(loss) and out.grad is not None
    cols = obj.columns(out.detach())
    surv = np.stack([cols[f"surv_{t}"] for t in obj.horizons], axis=1)
    assert ((surv >= 0) & (surv <= 1)).all() and (np.diff(surv, axis=1) <= 1e-9).all()
    again = objective_from_state(obj.state())
    assert np.allclose(again.columns(out.detach())["risk"], cols["risk"])
    # raising every output raises every hazard: higher risk and a survival curve nowhere higher, clip by clip
    # (between different clips discrete-time curves may cross, so the order of two clips proves nothing)
    raised = obj.columns(out.detach() + 2.0)
    surv_raised = np.stack([raised[f"surv_{t}"] for t in obj.horizons], axis=1)
    assert (raised["risk"] > cols["risk"]).all() and (surv_raised <= surv + 1e-9).all()


def test_cox_breslow_baseline_matches_scikit_survival() -> None:
    labels = _survival_labels(80, seed=2)
    log_h = np.random.default_rng(3).normal(size=80)
    obj = build_objective("survival", "coxph")
    obj.fit(labels)
    obj.fit_baseline(log_h, labels["duration"].to_numpy(), labels["event"].to_numpy())
    ref = BreslowEstimator().fit(log_h, labels["event"].to_numpy().astype(bool), labels["duration"].to_numpy())
    expected = ref.cum_baseline_hazard_(np.asarray(obj.horizons, dtype=float))
    assert np.allclose(obj.baseline, expected, rtol=1e-6)


def test_regression_scores_in_original_units() -> None:
    obj = build_objective("regression")
    obj.fit(pd.DataFrame({"target": [40.0, 60.0]}))
    encoded = obj.encode(pd.DataFrame({"target": [40.0, 60.0]}))["target"]
    assert encoded.tolist() == [-1.0, 1.0]
    assert obj.score(torch.tensor([[-1.0], [1.0]])).tolist() == [40.0, 60.0]


@pytest.mark.parametrize("head", ["softmax", "evidential"])
def test_classification_probabilities_and_unknown_labels(head: str) -> None:
    obj = build_objective("classification", head)
    obj.fit(pd.DataFrame({"target": ["normal", "reduced", "normal"]}))
    cols = obj.columns(torch.tensor([[3.0, -1.0], [0.0, 0.0]]))
    assert cols["prob_normal"] + cols["prob_reduced"] == pytest.approx([1.0, 1.0])
    assert cols["prob_normal"][0] > 0.5
    if head == "evidential":
        assert 0 < cols["uncertainty"][0] < cols["uncertainty"][1] <= 1
    with pytest.raises(ValueError, match="not seen in the training split"):
        obj.encode(pd.DataFrame({"target": ["mildly reduced"]}))
    with pytest.raises(ValueError, match="unknown classification head"):
        build_objective("classification", "relu")


def test_discrete_encoding_works_for_splits_with_only_events() -> None:
    obj = build_objective("survival", "logistic-hazard", num_durations=5)
    obj.fit(_survival_labels())
    only_events = pd.DataFrame({"duration": [100.0, 900.0], "event": [1.0, 1.0]})
    encoded = obj.encode(only_events)
    assert encoded["idx_duration"].shape == (2,) and encoded["event_disc"].tolist() == [1.0, 1.0]
    assert encoded["idx_duration"][0] <= encoded["idx_duration"][1]
