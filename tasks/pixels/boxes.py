"""Box arithmetic on ``(x0, y0, x1, y1)`` end-exclusive pixel boxes."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tasks.pixels.detector import Box


class Line(NamedTuple):
    """One line of text to mask: its box, and boxes beyond it that must be masked too (where ink runs on)."""

    box: Box
    extra: tuple[Box, ...] = ()


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


LINE_OVERLAP = 0.6
"""Two boxes are on one line when they overlap vertically by this share of the taller one (so a merged line
never grows into the lines above and below it)."""
WORD_GAP = 2.0
"""... and the horizontal gap between them is at most this many times the taller one's height (a table row's
label and value are one line)."""


def merge_lines(boxes: list[Box]) -> list[Box]:
    """Join boxes of the same text line separated by at most a word gap into one box (the gap between words is
    part of the line's footprint; masking words alone leaves stripes that still show the line's layout).

    Vectorised: the same-line relation is computed for all pairs at once, connected groups become their bounding
    box, and this repeats until nothing changes (thousands of boxes in every-frame mode merge in milliseconds).
    """
    arr = np.unique(np.asarray(boxes, dtype=np.int64).reshape(-1, 4), axis=0)
    while len(arr) > 1:
        x0, y0, x1, y1 = (arr[:, i] for i in range(4))
        h = y1 - y0
        overlap = np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None])
        tallest = np.maximum(h[:, None], h[None])
        gap = np.maximum(x0[:, None], x0[None]) - np.minimum(x1[:, None], x1[None])
        same = (overlap >= LINE_OVERLAP * tallest) & (gap <= WORD_GAP * tallest)
        count, group = connected_components(same)
        if count == len(arr):
            break
        arr = np.stack(
            [
                np.minimum.reduceat(*_by_group(x0, group)),
                np.minimum.reduceat(*_by_group(y0, group)),
                np.maximum.reduceat(*_by_group(x1, group)),
                np.maximum.reduceat(*_by_group(y1, group)),
            ],
            axis=1,
        )
    return [tuple(int(v) for v in row) for row in arr]


def paint_lines(lines: list[Line]) -> list[Box]:
    """The boxes to mask for text ``lines``: their boxes merged into lines (``merge_lines``), plus each line's
    extra boxes."""
    return merge_lines([line.box for line in lines]) + [box for line in lines for box in line.extra]


def connected_components(adjacent: np.ndarray) -> tuple[int, np.ndarray]:
    """Groups of a symmetric boolean adjacency matrix: (number of groups, group index per node)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components as components

    count, group = components(csr_matrix(adjacent), directed=False)
    return int(count), group


def _by_group(values: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(group[order]) != 0])
    return values[order], starts
