"""Weighted rank statistics shared by survival AUC and uncertainty AUROC (one pass for all resamples)."""

from __future__ import annotations

import numpy as np


def weighted_auc(scores: np.ndarray, positive_weights: np.ndarray, negative_weights: np.ndarray) -> np.ndarray:
    """P(score_pos > score_neg) + 0.5 P(tie), weighted; weights are (B, n), zero for rows not in a class.

    Equals the Mann–Whitney AUC of the weighted sample, so with 0/1 weights it is ``roc_auc_score``.
    Returns (B,); NaN where a resample has no positive or no negative weight.
    """
    order, starts = score_order(scores)
    return sorted_auc(np.atleast_2d(positive_weights)[:, order], np.atleast_2d(negative_weights)[:, order], starts)


def score_order(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Ascending order of the scores, and the start of each run of tied scores (None when all differ)."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    distinct = np.r_[True, s[1:] != s[:-1]]
    return order, None if distinct.all() else np.flatnonzero(distinct)


def sorted_auc(pos: np.ndarray, neg: np.ndarray, starts: np.ndarray | None) -> np.ndarray:
    """AUC from (B, n) class weights already in ascending score order; ``starts`` groups tied scores."""
    if starts is not None:
        pos = np.add.reduceat(pos, starts, axis=1)
        neg = np.add.reduceat(neg, starts, axis=1)
    neg_below = np.cumsum(neg, axis=1)
    neg_below -= 0.5 * neg  # strictly below, plus half of the tied
    numerator = np.einsum("bn,bn->b", pos, neg_below)
    denominator = pos.sum(axis=1) * neg.sum(axis=1)
    out = np.full(denominator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
