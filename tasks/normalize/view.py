"""The training view of a video: grayscale, square, resampled to a fixed frame rate by nearest frame."""

from __future__ import annotations

import cv2
import numpy as np


def resample_indices(times_ms: np.ndarray, target_fps: float) -> np.ndarray:
    """Indices of the source frames nearest to a regular ``target_fps`` grid spanning the clip."""
    if times_ms.size == 0:
        return np.zeros(0, dtype=np.int64)
    step = 1000.0 / target_fps
    grid = np.arange(0.0, float(times_ms[-1] - times_ms[0]) + step / 2, step) + times_ms[0]
    right = np.clip(np.searchsorted(times_ms, grid), 1, times_ms.size - 1) if times_ms.size > 1 else None
    if right is None:
        return np.zeros(grid.size, dtype=np.int64)
    left = right - 1
    nearer_left = (grid - times_ms[left]) <= (times_ms[right] - grid)
    return np.where(nearer_left, left, right).astype(np.int64)


def to_uint8_gray(frames: np.ndarray) -> np.ndarray:
    """(T,H,W[,3]) of any integer type → (T,H,W) uint8; colour by luma, wider types scaled by the clip range."""
    if frames.ndim == 4:
        if frames.dtype != np.uint8:
            frames = _scale_to_uint8(frames)
        weights = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.rint(frames.astype(np.float32) @ weights), 0, 255).astype(np.uint8)
    return frames if frames.dtype == np.uint8 else _scale_to_uint8(frames)


def _scale_to_uint8(frames: np.ndarray) -> np.ndarray:
    low, high = float(frames.min()), float(frames.max())
    if high <= low:
        return np.zeros(frames.shape, dtype=np.uint8)
    return np.rint((frames.astype(np.float32) - low) * (255.0 / (high - low))).astype(np.uint8)


def make_view(frames: np.ndarray, indices: np.ndarray, size: int) -> np.ndarray:
    """Pick ``indices`` from ``frames`` and resize each to ``size``×``size`` grayscale uint8 (area filter)."""
    picked = to_uint8_gray(frames[indices])
    out = np.empty((picked.shape[0], size, size), dtype=np.uint8)
    for i, frame in enumerate(picked):
        out[i] = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    return out
