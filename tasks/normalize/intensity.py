"""Intensity normalisation parameters, recorded at ingest and applied at load time (never baked in)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from pydicom import Dataset

DEFAULT_CT_WINDOW = (40.0, 400.0)  # soft tissue (centre, width) in HU


def _first(value: object) -> float | None:
    if value is None:
        return None
    try:
        item = value[0] if not isinstance(value, str | bytes) and hasattr(value, "__len__") else value  # type: ignore[index]
        out = float(item)
    except (TypeError, ValueError, IndexError):
        return None
    return out if np.isfinite(out) else None


def ct_window(ds: Dataset) -> dict[str, float | str]:
    """CT window from WindowCenter/WindowWidth (0028,1050)/(0028,1051), else soft tissue 40/400 HU."""
    centre, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if centre is None or width is None or width <= 0:
        centre, width = DEFAULT_CT_WINDOW
        source = "default-soft-tissue"
    else:
        source = "WindowCenter/WindowWidth"
    return {"method": "ct-window", "center": centre, "width": width, "source": source}


def zscore(data: np.ndarray) -> dict[str, float | str]:
    """Per-volume z-score parameters over non-zero voxels (background excluded)."""
    foreground = data[data != 0]
    values = foreground if foreground.size else data
    std = float(values.std()) if values.size else 0.0
    return {"method": "zscore", "mean": float(values.mean()) if values.size else 0.0, "std": std or 1.0}


def apply(data: np.ndarray, params: dict) -> np.ndarray:
    """Apply recorded parameters: CT window → [0, 1]; z-score and dataset mean/std → standard units."""
    x = data.astype(np.float32)
    if params.get("method") == "ct-window":
        low = params["center"] - params["width"] / 2
        return np.clip((x - low) / params["width"], 0.0, 1.0)
    return (x - params["mean"]) / (params["std"] or 1.0)


def pooled_mean_std(parts: Iterable[tuple[float, float, int]]) -> dict[str, float | str]:
    """Dataset mean/std from per-array (mean, std, count), as recorded for echo training views."""
    total = mean_acc = sq_acc = 0.0
    for mean, std, count in parts:
        total += count
        mean_acc += mean * count
        sq_acc += (std**2 + mean**2) * count
    if total == 0:
        return {"method": "dataset-mean-std", "mean": 0.0, "std": 1.0, "count": 0}
    mean = mean_acc / total
    std = float(np.sqrt(max(sq_acc / total - mean**2, 0.0)))
    return {"method": "dataset-mean-std", "mean": float(mean), "std": std or 1.0, "count": int(total)}
