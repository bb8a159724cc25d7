"""Report figures as PNG bytes (matplotlib's object API: no pyplot state, no display, nothing written)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tasks.evaluate import survival


def png(fig: Figure) -> bytes:
    """Render ``fig`` as PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def km_by_risk_group(table: pd.DataFrame, p_value: float | None) -> bytes:
    """Kaplan–Meier curves per predicted-risk group, with the log-rank p value."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    for name in ("low", "middle", "high", *sorted(set(table["risk_group"]) - {"low", "middle", "high"})):
        rows = table[table["risk_group"] == name]
        if rows.empty:
            continue
        times, surv = survival.kaplan_meier(rows["time"].to_numpy(float), rows["event"].to_numpy(bool))
        ax.step(np.r_[0.0, times], np.r_[1.0, surv[0]], where="post", label=f"{name} risk (n={len(rows)})")
    p_text = "n/a" if p_value is None else f"{p_value:.2g}"
    ax.set(
        xlabel="days", ylabel="survival", ylim=(0, 1.02), title=f"Kaplan–Meier by predicted risk (log-rank p={p_text})"
    )
    ax.legend(fontsize=8)
    return png(fig)


def survival_calibration(table: pd.DataFrame) -> bytes:
    """Predicted vs Kaplan–Meier observed survival at the horizon, by risk decile."""
    fig = Figure(figsize=(4.2, 4.2))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.plot(table["predicted"], table["observed"], "o-")
    horizon = table.attrs.get("horizon")
    ax.set(xlabel="predicted survival", ylabel="observed (Kaplan–Meier)", xlim=(0, 1), ylim=(0, 1),
           title=f"Calibration at {horizon:g} days" if horizon is not None else "Calibration")  # fmt: skip
    return png(fig)


def brier_curve(table: pd.DataFrame) -> bytes:
    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    ax.plot(table["days"], table["brier"])
    ax.axhline(0.25, color="grey", lw=1, ls="--", label="uninformative (0.25)")
    ax.set(xlabel="days", ylabel="IPCW Brier score", title="Brier score over time")
    ax.legend(fontsize=8)
    return png(fig)


def reliability(table: pd.DataFrame) -> bytes:
    """Reliability diagram: accuracy per confidence bin against the diagonal."""
    fig = Figure(figsize=(4.2, 4.2))
    ax = fig.subplots()
    centres = (table["lower"] + table["upper"]) / 2
    width = (table["upper"] - table["lower"]).iloc[0]
    ax.bar(centres, table["accuracy"].fillna(0), width=width * 0.95, edgecolor="k", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title="Reliability diagram")
    return png(fig)


def accuracy_coverage(table: pd.DataFrame, target: float, coverage_at_target: float | None) -> bytes:
    fig = Figure(figsize=(4.8, 3.4))
    ax = fig.subplots()
    ax.plot(table["coverage"], table["accuracy"])
    ax.axhline(target, color="grey", ls="--", lw=1, label=f"target accuracy {target:g}")
    if coverage_at_target is not None:
        ax.axvline(coverage_at_target, color="C3", lw=1, label=f"coverage {coverage_at_target:.2f}")
    ax.set(xlabel="coverage (share of cases answered)", ylabel="accuracy", title="Accuracy–coverage")
    ax.legend(fontsize=8)
    return png(fig)


def occlusion(region_delta: np.ndarray, segment_delta: np.ndarray) -> bytes:
    """Heat map of the score change per masked sector region, and bars per masked time segment."""
    fig = Figure(figsize=(8, 3.4))
    a, b = fig.subplots(1, 2)
    im = a.imshow(region_delta, cmap="magma")
    for (r, c), v in np.ndenumerate(region_delta):
        a.text(c, r, f"{v:.3g}", ha="center", va="center", color="w" if v < region_delta.max() / 2 else "k")
    a.set(title="|Δ score| masking sector region", xticks=[], yticks=[])
    fig.colorbar(im, ax=a, fraction=0.046)
    b.bar(np.arange(1, len(segment_delta) + 1), segment_delta)
    b.set(title="|Δ score| masking time segment", xlabel="segment", ylabel="mean |Δ score|")
    return png(fig)


def saliency(frames: np.ndarray, trained: np.ndarray, randomised: np.ndarray, spearman: np.ndarray) -> bytes:
    """Per clip: mean frame, trained-model map, randomised-model map."""
    n = len(trained)
    fig = Figure(figsize=(7, 2.3 * n))
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(frames[i], cmap="gray")
        axes[i, 1].imshow(trained[i], cmap="inferno", vmin=0, vmax=1)
        axes[i, 2].imshow(randomised[i], cmap="inferno", vmin=0, vmax=1)
        axes[i, 2].set_title(f"randomised (ρ={spearman[i]:.2f})", fontsize=8)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("clip (mean frame)", fontsize=8)
    axes[0, 1].set_title("trained model", fontsize=8)
    return png(fig)


def subgroup_forest(table: pd.DataFrame, metric: str) -> bytes | None:
    """Point estimate and interval of ``metric`` for every subgroup."""
    if table.empty or metric not in table.columns:
        return None
    rows = table.dropna(subset=[metric]).reset_index(drop=True)
    if rows.empty:
        return None
    fig = Figure(figsize=(5.5, 0.35 * len(rows) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    ci = np.array([v if isinstance(v, list | tuple) else [np.nan, np.nan] for v in rows[f"{metric}_ci"]], dtype=float)
    ci = np.where(np.isnan(ci), rows[metric].to_numpy(float)[:, None], ci)
    ax.errorbar(rows[metric], y, xerr=[rows[metric] - ci[:, 0], ci[:, 1] - rows[metric]], fmt="o", capsize=3)
    ax.set_yticks(y, [f"{c}={g} (n={n})" for c, g, n in zip(rows["column"], rows["group"], rows["n"], strict=True)])
    ax.set(xlabel=metric, title=f"{metric} by subgroup (95% CI)")
    return png(fig)
