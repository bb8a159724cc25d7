"""Regression metrics as weighted sums (point estimate and bootstrap resamples together)."""

from __future__ import annotations

import numpy as np


def mae(labels: np.ndarray, predictions: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Mean absolute error per weight row."""
    return (W @ np.abs(np.asarray(labels, float) - np.asarray(predictions, float))) / W.sum(axis=1)


def r2(labels: np.ndarray, predictions: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Coefficient of determination per weight row (1 - SSE / SST around the weighted mean)."""
    y = np.asarray(labels, float)
    total = W.sum(axis=1)
    sse = W @ np.square(y - np.asarray(predictions, float))
    sst = W @ np.square(y) - np.square(W @ y) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan)
