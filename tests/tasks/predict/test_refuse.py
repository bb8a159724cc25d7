"""Refusal codes and the abstention threshold, on rows whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.predict.apply import abstention_threshold, patient_level
from tasks.predict.profile import VIEW_UNCHECKED, TrainingProfile, refusal_reasons, unchecked


def rows(n: int, mean: float = 60.0, **columns: object) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = {"kind": "video", "modality": "US", "qc_status": "pass", "intensity_mean": rng.normal(mean, 3, n),
            "intensity_std": rng.normal(30, 2, n)}  # fmt: skip
    return pd.DataFrame({**base, **columns})


def test_each_input_the_model_must_not_score_gets_its_reason():
    profile = TrainingProfile.of(rows(50))
    new = pd.concat([rows(4), rows(1, qc_status="fail"), rows(1, modality="MR"), rows(1, kind="volume"),
                     rows(1, mean=250.0), rows(1, intensity_mean=np.nan)], ignore_index=True)  # fmt: skip
    assert refusal_reasons(new, profile).tolist() == [
        "", "", "", "", "qc-failed", "unseen-modality", "unseen-kind", "intensity-out-of-distribution",
        "intensity-out-of-distribution",  # unknown statistics fail closed
    ]  # fmt: skip


def test_the_threshold_keeps_the_target_coverage_of_validation():
    u = np.linspace(0, 1, 101)
    t = abstention_threshold(u, 0.9)
    assert t == 0.9 and (u <= t).mean() >= 0.9
    assert abstention_threshold(np.array([np.nan]), 0.9) is None


def test_patients_aggregate_their_instances_and_abstain_on_the_mean():
    frame = pd.DataFrame({"patient_id": ["A", "A", "B", "C"], "instance_id": ["1", "2", "3", "4"],
                          "status": ["scored", "abstain", "scored", "refused"], "risk": [1.0, 3.0, 0.5, np.nan],
                          "uncertainty": [0.1, 0.5, 0.1, np.nan]})  # fmt: skip
    out = patient_level(frame, threshold=0.2).set_index("patient_id")
    assert list(out.index) == ["A", "B"]  # C was refused: never scored
    assert out.loc["A", "risk"] == 2.0 and out.loc["A", "instances"] == 2 and out.loc["A", "status"] == "abstain"
    assert out.loc["B", "status"] == "scored"


def test_a_manifest_without_a_view_column_says_the_view_is_not_checked():
    assert unchecked(rows(2).columns) == [VIEW_UNCHECKED] and "not checked" in VIEW_UNCHECKED
    assert unchecked(rows(2, echo_view="A4C").columns) == []
    profile = TrainingProfile.of(rows(20, echo_view="A4C"))
    new = pd.concat([rows(1, echo_view="A4C"), rows(1, echo_view="PLAX"), rows(1, echo_view=None)], ignore_index=True)
    assert refusal_reasons(new, profile).tolist() == ["", "unseen-view", "unseen-view"]  # unknown fails closed
    assert TrainingProfile.of(rows(20)).views is None
