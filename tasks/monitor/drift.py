"""Two-sample tests between new manifest rows and a model's training rows, one per property.

scipy, not a monitoring framework: the properties are few and known (frame rate, size, intensity, modality
mix, QC failure rate), the samples small, and each test is the textbook one for its kind of data:

- numeric (fps, frames, height, width, intensity mean/std): Kolmogorov–Smirnov (``ks_2samp``), distribution-free
  and sensitive to a change of location *or* shape, with no binning to choose;
- categorical (modality): chi-squared test of the contingency table (``chi2_contingency``);
- QC failure rate: Fisher's exact test of the 2×2 table (``fisher_exact``), exact for the small counts a
  batch of new studies gives.

A property drifts when its p-value is below ``alpha`` divided by the number of tests run (Bonferroni), so one
ingest with many properties does not raise false alarms at ``alpha`` each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

NUMERIC = ("view_fps", "frames", "height", "width", "intensity_mean", "intensity_std")
CATEGORICAL = ("modality",)


@dataclass(frozen=True)
class DriftTest:
    feature: str
    test: str
    reference: str  # summary of the training rows (median or mix), no row values
    new: str
    statistic: float
    p_value: float
    drifted: bool

    def row(self) -> dict[str, object]:
        return {**self.__dict__, "statistic": round(self.statistic, 4), "p_value": float(f"{self.p_value:.3g}")}


def drift_tests(reference: pd.DataFrame, new: pd.DataFrame, alpha: float = 0.01, min_rows: int = 5) -> list[DriftTest]:
    """One test per property both frames have (numeric tests need ``min_rows`` values on each side)."""
    raw: list[tuple[str, str, str, str, float, float]] = []
    for c in NUMERIC:
        if c not in reference or c not in new:
            continue
        a, b = _values(reference[c]), _values(new[c])
        if min(a.size, b.size) < min_rows:
            continue
        r = stats.ks_2samp(a, b)
        raw.append((c, "Kolmogorov-Smirnov", f"median {np.median(a):.4g}", f"median {np.median(b):.4g}",
                    float(r.statistic), float(r.pvalue)))  # fmt: skip
    for c in CATEGORICAL:
        if c not in reference or c not in new or new.empty:
            continue
        table = pd.crosstab(pd.concat([reference[c], new[c]], ignore_index=True).astype(str),
                            np.r_[np.zeros(len(reference)), np.ones(len(new))])  # fmt: skip
        if table.shape[0] < 2:
            continue
        chi2, p, _, _ = stats.chi2_contingency(table.to_numpy())
        raw.append((c, "chi-squared", _mix(reference[c]), _mix(new[c]), float(chi2), float(p)))
    if "qc_status" in reference and "qc_status" in new and len(new):
        fa, fb = int((reference["qc_status"] != "pass").sum()), int((new["qc_status"] != "pass").sum())
        r = stats.fisher_exact([[fa, len(reference) - fa], [fb, len(new) - fb]])
        raw.append(("qc_failure_rate", "Fisher exact", f"{fa / max(len(reference), 1):.1%}",
                    f"{fb / len(new):.1%}", float(r.statistic), float(r.pvalue)))  # fmt: skip
    cut = alpha / max(len(raw), 1)
    return [DriftTest(*t, drifted=t[5] < cut) for t in raw]


def _values(s: pd.Series) -> np.ndarray:
    v = pd.to_numeric(s, errors="coerce").to_numpy(float)
    return v[np.isfinite(v)]


def _mix(s: pd.Series) -> str:
    share = s.astype(str).value_counts(normalize=True)
    return ", ".join(f"{k} {v:.0%}" for k, v in share.items())
