"""Box arithmetic on ``(x0, y0, x1, y1)`` end-exclusive pixel boxes."""

from __future__ import annotations

import numpy as np

from tasks.pixels.detector import Box


def pad(box: Box, margin: int, shape: tuple[int, ...], relative: float = 0.0) -> Box:
    """``box`` grown on every side by ``margin`` pixels plus ``relative`` times its thickness (the smaller
    side: the text height for a horizontal line) up to ``margin`` more, clipped to the image ``shape`` (H, W, ...)."""
    h, w = shape[:2]
    x0, y0, x1, y1 = box
    margin += min(margin, round(relative * min(x1 - x0, y1 - y0)))
    return max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)


def paint(mask: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """Set ``mask`` True inside every box (in place) and return it."""
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def coverage(box: Box, mask: np.ndarray) -> float:
    """Share of the pixels of ``box`` that are True in ``mask``."""
    x0, y0, x1, y1 = box
    area = max(0, x1 - x0) * max(0, y1 - y0)
    return float(mask[y0:y1, x0:x1].sum()) / area if area else 1.0


def bounding_box(mask: np.ndarray) -> Box:
    """Smallest box holding every True pixel of ``mask`` (the whole image if none is True)."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return 0, 0, mask.shape[1], mask.shape[0]
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1
