"""Per-frame timestamps and frame rate of a cine, from FrameTimeVector, FrameTime or CineRate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom import Dataset


@dataclass(frozen=True)
class FrameTiming:
    """Timestamps in milliseconds from the first frame, the mean frame rate and where they came from."""

    times_ms: np.ndarray
    fps: float | None
    source: str  # "FrameTimeVector" | "FrameTime" | "CineRate" | "none"


def _positive_float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def frame_timing(ds: Dataset, n_frames: int) -> FrameTiming:
    """Timestamps for ``n_frames`` frames: FrameTimeVector (0018,1065), else FrameTime (0018,1063),
    else CineRate (0018,0040); without any, frames are numbered and the rate is unknown."""
    vector = ds.get("FrameTimeVector")
    if vector is not None and n_frames > 1:
        deltas = np.asarray([float(v) for v in vector], dtype=np.float64)
        if deltas.size == n_frames and np.all(deltas[1:] > 0):
            deltas[0] = 0.0  # the first entry is the time since the (non-existent) previous frame
            times = np.cumsum(deltas)
            return FrameTiming(times, float(1000.0 * (n_frames - 1) / times[-1]), "FrameTimeVector")
    frame_time = _positive_float(ds.get("FrameTime"))
    if frame_time is not None:
        return FrameTiming(np.arange(n_frames) * frame_time, 1000.0 / frame_time, "FrameTime")
    cine_rate = _positive_float(ds.get("CineRate")) or _positive_float(ds.get("RecommendedDisplayFrameRate"))
    if cine_rate is not None:
        return FrameTiming(np.arange(n_frames) * (1000.0 / cine_rate), cine_rate, "CineRate")
    return FrameTiming(np.arange(n_frames, dtype=np.float64), None, "none")
