"""Survival metrics under right censoring, written as weighted sums so bootstrap resamples run together.

Every metric takes a weight matrix ``W`` of shape (B, n) (see :mod:`tasks.evaluate.bootstrap`; a single
row of ones is the plain estimate) and returns one value per row. Conventions follow the references the
tests compare against:

- Harrell's C: scikit-survival ``concordance_index_censored`` (an event is comparable to later times and
  to censorings at its own time; tied risks count one half; ties are exact, no tolerance).
- Antolini's C_td: pycox ``concordance_td(method="adj_antolini")`` with ``steps="post"`` lookup.
- Brier score, IBS and cumulative/dynamic AUC: scikit-survival ``brier_score``,
  ``integrated_brier_score`` (trapezoid rule; pycox's Simpson-rule IBS fails on SciPy >= 1.14, which
  removed ``simps``) and ``cumulative_dynamic_auc``, with the censoring distribution estimated by
  Kaplan–Meier on the evaluated data itself (re-estimated in every resample).
Pairs of copies of the same row in a resample are not compared with each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from tasks.evaluate.ranking import score_order, sorted_auc


@dataclass(frozen=True)
class GroupedCounts:
    """Weighted counts at each unique time, for every weight row."""

    times: np.ndarray  # (U,) unique observed times, ascending
    inverse: np.ndarray  # (n,) index of each row's time in ``times``
    total: np.ndarray  # (B, U) weight leaving at the time
    deaths: np.ndarray  # (B, U) weight of events at the time
    at_risk: np.ndarray  # (B, U) weight with time >= the time


def grouped_counts(durations: np.ndarray, events: np.ndarray, W: np.ndarray | None = None) -> GroupedCounts:
    """Counts per unique time for each row of ``W`` (B, n)."""
    durations = np.asarray(durations, dtype=np.float64)
    events = np.asarray(events, dtype=bool)
    W = _weights(W, durations.size)
    order = np.argsort(durations, kind="stable")
    sorted_t = durations[order]
    starts = np.flatnonzero(np.r_[True, sorted_t[1:] != sorted_t[:-1]])
    Ws = W[:, order]
    total = np.add.reduceat(Ws, starts, axis=1)
    deaths = np.add.reduceat(Ws * events[order], starts, axis=1)
    at_risk = np.cumsum(total[:, ::-1], axis=1)[:, ::-1]
    inverse = np.empty(durations.size, dtype=np.int64)
    inverse[order] = np.cumsum(np.r_[True, sorted_t[1:] != sorted_t[:-1]]) - 1
    return GroupedCounts(sorted_t[starts], inverse, total, deaths, at_risk)


def kaplan_meier(
    durations: np.ndarray, events: np.ndarray, W: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier survival at each unique time: (times (U,), survival (B, U))."""
    c = grouped_counts(durations, events, W)
    factor = 1.0 - _safe_divide(c.deaths, c.at_risk)
    return c.times, np.cumprod(factor, axis=1)


def censoring_survival(
    durations: np.ndarray, events: np.ndarray, W: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier of the censoring distribution G (events leave the risk set before censorings at a tie)."""
    c = grouped_counts(durations, events, W)
    factor = 1.0 - _safe_divide(c.total - c.deaths, c.at_risk - c.deaths)
    return c.times, np.cumprod(factor, axis=1)


def step_lookup(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Right-continuous step function value at ``at`` (1 before the first time); ``values`` (B, U)."""
    idx = np.searchsorted(times, np.asarray(at, dtype=np.float64), side="right") - 1
    out = values[:, idx.clip(0)]
    return np.where(idx >= 0, out, 1.0)


def harrell_c(
    durations: np.ndarray,
    events: np.ndarray,
    risk: np.ndarray,
    W: np.ndarray | None = None,
    block: int = 1024,
    counts: GroupedCounts | None = None,
) -> np.ndarray:
    """Harrell's concordance of ``risk`` (higher = earlier event), one value per weight row."""
    t, d, r, Ws, col_start = _sorted_by_time(durations, events, W, risk)

    tie_end = np.searchsorted(t, t, side="right")

    def concordant(a: int, b: int, c0: int) -> np.ndarray:
        ri, rj = r[a:b, None], r[None, c0:]
        score = (ri > rj).astype(np.float32)
        score += np.float32(0.5) * (ri == rj)
        e = int(tie_end[b - 1]) - c0
        # an event is comparable to every later time, and to censorings at its own time
        later = np.arange(c0, t.size)[None, :] >= tie_end[a:b, None]
        later[:, :e] |= (t[a:b, None] == t[None, c0 : c0 + e]) & ~d[None, c0 : c0 + e]
        score *= later & d[a:b, None]
        return score

    c = counts or grouped_counts(durations, events, W)
    comparable_pairs = (c.deaths * (c.at_risk - c.deaths)).sum(axis=1)  # Σ_k D_k (R_k - D_k)
    return _safe_divide(_pair_sum(Ws, concordant, col_start, block), comparable_pairs, fill=np.nan)


def antolini_c_td(
    durations: np.ndarray,
    events: np.ndarray,
    surv: np.ndarray,
    grid: np.ndarray,
    W: np.ndarray | None = None,
    block: int = 1024,
    counts: GroupedCounts | None = None,
) -> np.ndarray:
    """Antolini's time-dependent concordance of survival curves ``surv`` (n, K) given on ``grid`` (K,)."""
    order = np.argsort(np.asarray(durations, dtype=np.float64), kind="stable")
    t, d, _, Ws, col_start = _sorted_by_time(durations, events, W)
    S = np.asarray(surv, dtype=np.float64)[order]
    idx = (np.searchsorted(np.asarray(grid, dtype=np.float64), t, side="right") - 1).clip(0, S.shape[1] - 1)

    tie_end = np.searchsorted(t, t, side="right")  # first row after each row's tie group

    def concordant(a: int, b: int, c0: int) -> np.ndarray:
        rows = np.arange(a, b)
        si = S[rows, idx[a:b]][:, None]
        sj = S[c0:, idx[a:b]].T
        lower = (si < sj).astype(np.float32)
        lower += np.float32(0.5) * (si == sj)
        e = int(tie_end[b - 1]) - c0  # tied times can only fall in the first e columns
        near = lower[:, :e].copy()
        # later times: an event is concordant when its own survival is lower
        lower *= (np.arange(c0, t.size)[None, :] >= tie_end[a:b, None]) & d[a:b, None]
        # tied times (pycox's adjusted rules), only in the small leading block of columns
        ti, tj = t[a:b, None], t[None, c0 : c0 + e]
        di, dj = d[a:b, None], d[None, c0 : c0 + e]
        eq = (ti == tj) & (rows[:, None] != np.arange(c0, c0 + e)[None, :])
        both = np.float32(0.5) + np.float32(0.5) * (si == sj[:, :e])
        tied = np.where(di & dj, both, np.where(di, near, np.where(dj, 1 - near, 0)))
        lower[:, :e] += np.where(eq, tied, 0).astype(np.float32)
        return lower

    c = counts or grouped_counts(durations, events, W)
    sq = grouped_counts(durations, events, np.square(_weights(W, t.size)))  # Σ w² per time, for i ≠ j
    censored, censored_sq = c.total - c.deaths, sq.total - sq.deaths
    later = c.deaths * (c.at_risk - c.total)  # event before a later time
    tied = (np.square(c.total) - sq.total) - (np.square(censored) - censored_sq)  # tied pairs, not both censored
    comparable_pairs = (later + tied).sum(axis=1)
    return _safe_divide(_pair_sum(Ws, concordant, col_start, block), comparable_pairs, fill=np.nan)


@dataclass(frozen=True)
class Censoring:
    """Inverse probability of censoring weights for every weight row."""

    times: np.ndarray  # (U,)
    G: np.ndarray  # (B, U) censoring survival
    inv_at_observed: np.ndarray  # (B, n) 1 / G(t_i), 0 where G is 0

    def inv_at(self, at: np.ndarray) -> np.ndarray:
        return _safe_inverse(step_lookup(self.times, self.G, at))


def censoring_weights(
    durations: np.ndarray, events: np.ndarray, W: np.ndarray | None = None, counts: GroupedCounts | None = None
) -> Censoring:
    """Censoring distribution of each resample (Kaplan–Meier of the censorings) and 1/G at observed times."""
    c = counts or grouped_counts(durations, events, W)
    factor = 1.0 - _safe_divide(c.total - c.deaths, c.at_risk - c.deaths)
    G = np.cumprod(factor, axis=1)
    return Censoring(c.times, G, _safe_inverse(G[:, c.inverse]))


def brier_scores(
    durations: np.ndarray,
    events: np.ndarray,
    surv: np.ndarray,
    grid: np.ndarray,
    W: np.ndarray | None = None,
    censoring: Censoring | None = None,
) -> np.ndarray:
    """IPCW Brier score at each grid time (Graf et al.): (B, K)."""
    t = np.asarray(durations, dtype=np.float64)
    d = np.asarray(events, dtype=bool)
    grid = np.asarray(grid, dtype=np.float64)
    S = np.asarray(surv, dtype=np.float64)
    W = _weights(W, t.size)
    cens = censoring or censoring_weights(t, d, W)
    inv_g_obs = cens.inv_at_observed
    inv_g_grid = cens.inv_at(grid)
    cases = (t[:, None] <= grid[None, :]) & d[:, None]
    controls = t[:, None] > grid[None, :]
    case_term = (W * inv_g_obs) @ (np.square(S) * cases)
    control_term = (W @ (np.square(1.0 - S) * controls)) * inv_g_grid
    return (case_term + control_term) / W.sum(axis=1, keepdims=True)


def integrated_brier(
    durations: np.ndarray,
    events: np.ndarray,
    surv: np.ndarray,
    grid: np.ndarray,
    W: np.ndarray | None = None,
    censoring: Censoring | None = None,
) -> np.ndarray:
    """Integrated Brier score over ``grid`` (trapezoid rule, divided by the grid span): (B,)."""
    grid = np.asarray(grid, dtype=np.float64)
    if grid.size < 2:
        raise ValueError("the integrated Brier score needs at least two grid times")
    bs = brier_scores(durations, events, surv, grid, W, censoring)
    return np.trapezoid(bs, grid, axis=1) / (grid[-1] - grid[0])


def cumulative_dynamic_auc(
    durations: np.ndarray,
    events: np.ndarray,
    risk: np.ndarray,
    horizon: float,
    W: np.ndarray | None = None,
    censoring: Censoring | None = None,
) -> np.ndarray:
    """IPCW cumulative/dynamic AUC at ``horizon`` (Uno et al.): cases die by then, controls survive it."""
    return cumulative_dynamic_aucs(durations, events, risk, [horizon], W, censoring)[:, 0]


def cumulative_dynamic_aucs(
    durations: np.ndarray,
    events: np.ndarray,
    risk: np.ndarray,
    horizons: Sequence[float],
    W: np.ndarray | None = None,
    censoring: Censoring | None = None,
) -> np.ndarray:
    """Cumulative/dynamic AUC at each horizon, sorting by risk once: (B, H)."""
    t = np.asarray(durations, dtype=np.float64)
    d = np.asarray(events, dtype=bool)
    W = _weights(W, t.size)
    inv_g_obs = (censoring or censoring_weights(t, d, W)).inv_at_observed
    order, starts = score_order(risk)
    Wr, t_r, d_r = W[:, order], t[order], d[order]
    case_w = Wr * inv_g_obs[:, order]
    out = np.empty((W.shape[0], len(horizons)))
    for k, h in enumerate(horizons):
        cases, controls = (t_r <= h) & d_r, t_r > h
        out[:, k] = sorted_auc(case_w * cases, Wr * controls, starts)
    return out


def logrank(durations: np.ndarray, events: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """Multi-group log-rank test: (chi-square statistic, p value)."""
    labels, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    if labels.size < 2:
        return float("nan"), float("nan")
    indicator = (codes[None, :] == np.arange(labels.size)[:, None]).astype(np.float64)
    c = grouped_counts(durations, events, indicator)
    n_k = c.at_risk.sum(axis=0)
    d_k = c.deaths.sum(axis=0)
    share = _safe_divide(c.at_risk, n_k[None, :])
    observed_minus_expected = (c.deaths - share * d_k[None, :]).sum(axis=1)
    scale = _safe_divide(d_k * (n_k - d_k), n_k - 1.0)
    cov = np.einsum("k,gk,hk->gh", scale, share, -share)
    cov[np.diag_indices_from(cov)] += (scale[None, :] * share).sum(axis=1)
    x = observed_minus_expected[:-1]
    chi2 = float(x @ np.linalg.pinv(cov[:-1, :-1]) @ x)
    return chi2, float(stats.chi2.sf(chi2, labels.size - 1))


def calibration_table(
    durations: np.ndarray, events: np.ndarray, surv_at_horizon: np.ndarray, horizon: float, bins: int = 10
) -> pd.DataFrame:
    """Predicted vs Kaplan–Meier observed survival at ``horizon`` by decile of predicted risk."""
    predicted = np.asarray(surv_at_horizon, dtype=np.float64)
    n_bins = int(min(bins, max(1, predicted.size // 5)))
    ranks = pd.Series(-predicted).rank(method="first").to_numpy()
    bin_of = np.minimum((ranks - 1) * n_bins // predicted.size, n_bins - 1).astype(int)
    rows = []
    for b in range(n_bins):
        mask = bin_of == b
        times, km = kaplan_meier(np.asarray(durations)[mask], np.asarray(events)[mask])
        observed = float(step_lookup(times, km, np.array([horizon]))[0, 0])
        rows.append(
            {"bin": b + 1, "n": int(mask.sum()), "predicted": float(predicted[mask].mean()), "observed": observed}
        )
    return pd.DataFrame(rows)


def _sorted_by_time(
    durations: np.ndarray, events: np.ndarray, W: np.ndarray | None, risk: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    t = np.asarray(durations, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t = t[order]
    d = np.asarray(events, dtype=bool)[order]
    r = None if risk is None else np.asarray(risk, dtype=np.float64)[order]
    Ws = _weights(W, t.size)[:, order]
    col_start = np.searchsorted(t, t, side="left")  # first row tied with each row's time
    return t, d, r, Ws, col_start


def _pair_sum(Ws: np.ndarray, concordant, col_start: np.ndarray, block: int) -> np.ndarray:
    """Σ_ij w_i w_j K_ij over pairs with j at or after i's tie group, one row block at a time.

    The inner sums run in float32 matrix products: K holds 0, ½ and 1 and the weights are small
    integers, so every partial sum below 2**23 is exact; the outer sums are float64.
    """
    n = Ws.shape[1]
    W32 = Ws.astype(np.float32)
    total = np.zeros(Ws.shape[0])
    for a in range(0, n, block):
        b = min(a + block, n)
        c0 = int(col_start[a])
        inner = W32[:, c0:] @ concordant(a, b, c0).T
        total += (inner.astype(np.float64) * Ws[:, a:b]).sum(axis=1)
    return total


def _weights(W: np.ndarray | None, n: int) -> np.ndarray:
    if W is None:
        return np.ones((1, n))
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    if W.shape[1] != n:
        raise ValueError(f"weights have {W.shape[1]} columns; the data has {n} rows")
    return W


def _safe_divide(num: np.ndarray, den: np.ndarray, fill: float = 0.0) -> np.ndarray:
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.full(num.shape, fill, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _safe_inverse(g: np.ndarray) -> np.ndarray:
    """1/G, with 0 where G is 0 (scikit-survival's convention: such terms drop out)."""
    return _safe_divide(np.ones_like(g), g)
