"""Temporal composites of a cine: a few images that show everything drawn on any frame.

Burned-in overlays are static, so the per-pixel median of a sample of frames shows them crisply over a
blurred, averaged sector; the per-pixel maximum over all frames adds bright text that only appears on some
frames (counters, transient labels). Detection runs on these plus a few sampled frames, not on every frame.
"""

from __future__ import annotations

import numpy as np

MEDIAN_FRAMES = 16


def median_image(gray: np.ndarray, frames: int = MEDIAN_FRAMES) -> np.ndarray:
    """Per-pixel median over up to ``frames`` evenly spaced frames of ``gray`` (T,H,W) uint8."""
    idx = sample_indices(gray.shape[0], frames)
    return np.median(gray[idx], axis=0).astype(np.uint8)


def max_image(gray: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over all frames."""
    return gray.max(axis=0)


def sample_indices(count: int, samples: int) -> np.ndarray:
    """``samples`` evenly spaced frame indices in ``range(count)`` (all frames if there are fewer)."""
    if samples >= count:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, samples + 2)[1:-1].round().astype(int))
