"""Classification calibration and uncertainty: ECE, Brier, NLL, error-detection and OOD AUROC, abstention.

Per-row quantities are computed once; weighted means over a (B, n) weight matrix give the point estimate
(row of ones) and every bootstrap resample together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.evaluate.ranking import weighted_auc

EPS = 1e-12


@dataclass(frozen=True)
class Classified:
    """Per-row facts of a classifier's output."""

    probs: np.ndarray  # (n, K) predicted class probabilities
    labels: np.ndarray  # (n,) integer class index
    uncertainty: np.ndarray  # (n,) higher = less sure (evidential K/S, or 1 - max probability)

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels


def classified(probs: np.ndarray, labels: np.ndarray, uncertainty: np.ndarray | None = None) -> Classified:
    """Validate shapes and fill the uncertainty with 1 - max probability when none is given."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if probs.ndim != 2 or probs.shape[0] != labels.size:
        raise ValueError(f"probabilities must be (n, classes) with n = {labels.size}; got {probs.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must index the {probs.shape[1]} probability columns")
    u = 1.0 - probs.max(axis=1) if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
    return Classified(probs, labels, u)


def accuracy(c: Classified, W: np.ndarray) -> np.ndarray:
    return _mean(W, c.correct.astype(np.float64))


def brier(c: Classified, W: np.ndarray) -> np.ndarray:
    """Multi-class Brier score: mean squared distance between probabilities and the one-hot label."""
    onehot = np.eye(c.probs.shape[1])[c.labels]
    return _mean(W, np.square(c.probs - onehot).sum(axis=1))


def nll(c: Classified, W: np.ndarray) -> np.ndarray:
    """Mean negative log-likelihood of the true class."""
    p = c.probs[np.arange(c.labels.size), c.labels]
    return _mean(W, -np.log(np.clip(p, EPS, 1.0)))


def ece(c: Classified, W: np.ndarray, bins: int = 15) -> np.ndarray:
    """Expected calibration error with ``bins`` equal-width confidence bins (Guo et al.)."""
    members = _bin_members(c.confidence, bins)
    gap = members * (c.correct - c.confidence)[:, None]
    return np.abs(W @ gap).sum(axis=1) / W.sum(axis=1)


def reliability_table(c: Classified, bins: int = 15) -> pd.DataFrame:
    """Accuracy and mean confidence per confidence bin (the reliability diagram's data)."""
    members = _bin_members(c.confidence, bins)
    n = members.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = (members * c.correct[:, None]).sum(axis=0) / n
        conf = (members * c.confidence[:, None]).sum(axis=0) / n
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame(
        {"lower": edges[:-1], "upper": edges[1:], "n": n.astype(int), "accuracy": acc, "confidence": conf}
    )


def auroc_uncertainty_error(c: Classified, W: np.ndarray) -> np.ndarray:
    """How well the uncertainty ranks misclassified rows above correct ones (AUROC)."""
    wrong = ~c.correct
    return weighted_auc(c.uncertainty, W * wrong, W * ~wrong)


def ood_auroc(in_uncertainty: np.ndarray, out_uncertainty: np.ndarray) -> float:
    """AUROC of the uncertainty for telling out-of-distribution inputs (positives) from in-distribution ones."""
    scores = np.r_[np.asarray(in_uncertainty, float), np.asarray(out_uncertainty, float)]
    positive = np.r_[np.zeros(len(in_uncertainty)), np.ones(len(out_uncertainty))]
    return float(weighted_auc(scores, positive[None, :], 1.0 - positive[None, :])[0])


def accuracy_coverage(c: Classified) -> pd.DataFrame:
    """Accuracy of the rows kept when abstaining on the most uncertain ones, for every coverage."""
    order = np.argsort(c.uncertainty, kind="stable")
    kept = np.arange(1, order.size + 1)
    acc = np.cumsum(c.correct[order]) / kept
    return pd.DataFrame({"coverage": kept / order.size, "accuracy": acc, "threshold": c.uncertainty[order]})


def abstention(c: Classified, target_accuracy: float) -> dict[str, float]:
    """Largest coverage whose accuracy reaches ``target_accuracy``; abstain above the returned threshold.

    Thresholds only fall between distinct uncertainty values, so tied rows are kept or dropped together.
    """
    curve = accuracy_coverage(c)
    u = curve["threshold"].to_numpy()
    boundary = np.r_[u[1:] != u[:-1], True]
    ok = (curve["accuracy"].to_numpy() >= target_accuracy) & boundary
    if not ok.any():
        return {"abstain_threshold": float("nan"), "abstain_rate": 1.0, "accuracy_retained": float("nan")}
    k = int(np.flatnonzero(ok)[-1])
    return {
        "abstain_threshold": float(u[k]),
        "abstain_rate": float(1.0 - curve["coverage"].iloc[k]),
        "accuracy_retained": float(curve["accuracy"].iloc[k]),
    }


def _bin_members(confidence: np.ndarray, bins: int) -> np.ndarray:
    idx = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    return np.eye(bins)[idx]


def _mean(W: np.ndarray, values: np.ndarray) -> np.ndarray:
    return (W @ values) / W.sum(axis=1)
