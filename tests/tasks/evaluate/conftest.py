"""Shared synthetic survival data for the evaluation tests (tied times, tied risks, clustered patients)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def survival_frame(n: int = 400, patients: int = 200, seed: int = 0) -> pd.DataFrame:
    """Predictions table in the run contract: exponential times, rounded to days (ties), risk rounded (ties)."""
    rng = np.random.default_rng(seed)
    pid = rng.integers(0, patients, n)
    x = rng.normal(size=patients)
    risk = np.round(x[pid] + rng.normal(scale=0.5, size=n), 1)
    event_time = rng.exponential(300 * np.exp(-x))[pid]
    censor_time = rng.uniform(0, 900, patients)[pid]
    time = np.ceil(np.minimum(event_time, censor_time))
    event = event_time <= censor_time
    event[time == time.max()] = True  # scikit-survival refuses a zero censoring survival at an event time
    grid = np.array([30, 60, 90, 180, 270, 365, 540])
    surv = np.round(np.exp(-np.outer(np.exp(risk), grid) / 300), 3)
    frame = pd.DataFrame({
        "patient_id": [f"p{i:03d}" for i in pid], "instance_id": [f"i{i:04d}" for i in range(n)],
        "time": time, "event": event, "risk": risk,
        "sex": np.array(["F", "M"])[rng.integers(0, 2, patients)][pid],
        "age": rng.uniform(30, 90, patients)[pid], "group": np.array(["a", "b"])[rng.integers(0, 2, patients)][pid],
    })  # fmt: skip
    for day, column in zip(grid, surv.T, strict=True):
        frame[f"surv_{day}"] = column
    return frame


@pytest.fixture
def surv_frame() -> pd.DataFrame:
    return survival_frame()
