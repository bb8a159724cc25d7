"""Patient-level bootstrap as a weight matrix, so every metric runs all resamples at once.

A resample is a vector of multiplicities: how many times each row was drawn. Row 0 of the matrix is
all ones (the data as observed), rows 1..B are resamples drawn *by patient*: a patient drawn twice
contributes all of its instances twice. Metrics written as weighted sums over rows then compute the
point estimate and every resample in a few matrix products instead of a Python loop per resample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def patient_weights(patient_ids: Sequence[object] | np.ndarray, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(1 + n_resamples, n_rows) float64 multiplicities; row 0 is the observed data (all ones)."""
    codes, _ = _codes(patient_ids)
    n_patients = int(codes.max()) + 1 if codes.size else 0
    out = np.ones((1 + n_resamples, codes.size), dtype=np.float64)
    if n_resamples and n_patients:
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(n_patients, np.full(n_patients, 1.0 / n_patients), size=n_resamples)
        out[1:] = counts[:, codes]
    return out


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the resampled values (row 0, the point estimate, excluded); NaNs ignored."""
    resampled = np.asarray(values, dtype=np.float64)[1:]
    resampled = resampled[np.isfinite(resampled)]
    if resampled.size < 2:
        return (float("nan"), float("nan"))
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(resampled, [tail, 100.0 - tail])
    return (float(lo), float(hi))


def _codes(values: Sequence[object] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniques, codes = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    return codes.astype(np.int64), uniques
