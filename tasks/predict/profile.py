"""What a model's training data looked like, and which new inputs fall outside it (never scored).

Per instance: kind, modality, and intensity statistics (``view_mean``/``view_std`` from the manifest when
ingest recorded them, else read from the stored array). The training profile is the same statistics over the
champion's training patients. An input is refused when it failed QC, is of a kind or modality the model never
saw, or its intensity mean or std lies more than ``max_z`` robust z-scores (median/MAD) from the training rows.

A *view* the model never saw (e.g. an apical echo view for a parasternal model) is refused only when the manifest
has an ``echo_view`` column. Ingest records no view attribute today (the synthetic cohort and most echo exports
carry no ``ViewCodeSequence``), so the check is not made, and ``unchecked`` says so in every predict summary
instead of passing silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from models.table import STORE

INTENSITY = ("intensity_mean", "intensity_std")
VIEW_COLUMN = "echo_view"  # the acquired view (A4C, PLAX, ...); not the ``view_*`` columns of the training view
VIEW_UNCHECKED = (f"unseen view: not checked, the manifest has no {VIEW_COLUMN} column (ingest records no view "
                  "attribute)")  # fmt: skip


def unchecked(columns: pd.Index | list[str]) -> list[str]:
    """Out-of-distribution checks that could not be made on a manifest with these columns (plain sentences)."""
    return [] if VIEW_COLUMN in set(columns) else [VIEW_UNCHECKED]


def with_intensity(dataset: Path, rows: pd.DataFrame, key: str) -> pd.DataFrame:
    """``rows`` with ``intensity_mean``/``intensity_std``: the manifest's view statistics, else from the array."""
    rows = rows.copy()
    if {"view_mean", "view_std"} <= set(rows.columns) and rows["view_mean"].notna().all():
        rows["intensity_mean"], rows["intensity_std"] = rows["view_mean"].astype(float), rows["view_std"].astype(float)
        return rows
    group = zarr.open_group(Path(dataset) / STORE, mode="r")
    stats = []
    for k in rows[key]:
        if not isinstance(k, str):
            stats.append((np.nan, np.nan))
            continue
        a = np.asarray(group[k][:: max(1, group[k].shape[0] // 8)], dtype=np.float32)  # a few frames or slices
        stats.append((float(a.mean()), float(a.std())))
    rows["intensity_mean"], rows["intensity_std"] = zip(*stats, strict=True) if stats else ((), ())
    return rows


@dataclass(frozen=True)
class TrainingProfile:
    kinds: frozenset[str]
    modalities: frozenset[str]
    median: dict[str, float]
    scale: dict[str, float]  # 1.4826 × MAD, floored
    views: frozenset[str] | None = None  # None: the manifest has no view column

    @classmethod
    def of(cls, rows: pd.DataFrame) -> TrainingProfile:
        median, scale = {}, {}
        for c in INTENSITY:
            v = rows[c].dropna().to_numpy(float)
            median[c] = float(np.median(v)) if v.size else float("nan")
            mad = float(np.median(np.abs(v - median[c]))) if v.size else float("nan")
            scale[c] = max(1.4826 * mad, 0.05 * abs(median[c]), 1e-3)
        views = frozenset(rows[VIEW_COLUMN].dropna().astype(str)) if VIEW_COLUMN in rows else None
        return cls(frozenset(rows["kind"].astype(str)), frozenset(rows["modality"].astype(str)), median, scale, views)


def refusal_reasons(rows: pd.DataFrame, profile: TrainingProfile, max_z: float = 6.0) -> pd.Series:
    """Per row the first reason it must not be scored, or "" (machine-readable codes, no values)."""
    reasons = pd.Series("", index=rows.index, dtype=object)

    def mark(mask: pd.Series, code: str) -> None:
        reasons[(reasons == "") & mask.fillna(True)] = code

    if "qc_status" in rows:
        mark(rows["qc_status"] != "pass", "qc-failed")
    mark(~rows["kind"].astype(str).isin(profile.kinds), "unseen-kind")
    mark(~rows["modality"].astype(str).isin(profile.modalities), "unseen-modality")
    if profile.views is not None and VIEW_COLUMN in rows:
        mark(~rows[VIEW_COLUMN].astype(str).isin(profile.views) | rows[VIEW_COLUMN].isna(), "unseen-view")
    for c in INTENSITY:
        z = (rows[c].astype(float) - profile.median[c]).abs() / profile.scale[c]
        mark(~(z <= max_z), "intensity-out-of-distribution")  # unknown statistics fail closed
    return reasons
