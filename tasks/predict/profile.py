"""What a model's training data looked like, and which new inputs fall outside it (never scored).

Per instance: kind, modality, and intensity statistics (``view_mean``/``view_std`` from the manifest when
ingest recorded them, else read from the stored array). The training profile is the same statistics over the
champion's training patients. An input is refused when it failed QC, is of a kind or modality the model never
saw, or its intensity mean or std lies more than ``max_z`` robust z-scores (median/MAD) from the training rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from models.table import STORE

INTENSITY = ("intensity_mean", "intensity_std")


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

    @classmethod
    def of(cls, rows: pd.DataFrame) -> TrainingProfile:
        median, scale = {}, {}
        for c in INTENSITY:
            v = rows[c].dropna().to_numpy(float)
            median[c] = float(np.median(v)) if v.size else float("nan")
            mad = float(np.median(np.abs(v - median[c]))) if v.size else float("nan")
            scale[c] = max(1.4826 * mad, 0.05 * abs(median[c]), 1e-3)
        return cls(frozenset(rows["kind"].astype(str)), frozenset(rows["modality"].astype(str)), median, scale)


def refusal_reasons(rows: pd.DataFrame, profile: TrainingProfile, max_z: float = 6.0) -> pd.Series:
    """Per row the first reason it must not be scored, or "" (machine-readable codes, no values)."""
    reasons = pd.Series("", index=rows.index, dtype=object)

    def mark(mask: pd.Series, code: str) -> None:
        reasons[(reasons == "") & mask.fillna(True)] = code

    if "qc_status" in rows:
        mark(rows["qc_status"] != "pass", "qc-failed")
    mark(~rows["kind"].astype(str).isin(profile.kinds), "unseen-kind")
    mark(~rows["modality"].astype(str).isin(profile.modalities), "unseen-modality")
    for c in INTENSITY:
        z = (rows[c].astype(float) - profile.median[c]).abs() / profile.scale[c]
        mark(~(z <= max_z), "intensity-out-of-distribution")  # unknown statistics fail closed
    return reasons
