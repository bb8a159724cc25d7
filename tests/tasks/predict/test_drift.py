"""Drift tests on manifests whose shift is known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.monitor.drift import drift_tests


def manifest(n: int, seed: int, fps: float = 30.0, mean: float = 60.0, mr: int = 0, failed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"view_fps": rng.normal(fps, 1.0, n), "frames": rng.integers(40, 60, n),
                         "height": np.full(n, 112), "width": np.full(n, 112),
                         "intensity_mean": rng.normal(mean, 4, n), "intensity_std": rng.normal(30, 2, n),
                         "modality": ["MR"] * mr + ["US"] * (n - mr),
                         "qc_status": ["fail"] * failed + ["pass"] * (n - failed)})  # fmt: skip


def test_same_distribution_does_not_drift():
    tests = drift_tests(manifest(200, 0, failed=4), manifest(60, 1, failed=1))
    assert {t.feature for t in tests} >= {"view_fps", "intensity_mean", "qc_failure_rate"}
    assert not any(t.drifted for t in tests)


def test_each_shift_is_found_and_only_it():
    reference = manifest(200, 0, failed=4)
    shifted = {
        "view_fps": manifest(60, 1, fps=50.0),
        "intensity_mean": manifest(60, 1, mean=90.0),
        "modality": manifest(60, 1, mr=20),
        "qc_failure_rate": manifest(60, 1, failed=25),
    }
    for feature, new in shifted.items():
        assert [t.feature for t in drift_tests(reference, new) if t.drifted] == [feature]
