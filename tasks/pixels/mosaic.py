"""Many small crops through the detector in few calls: shelf-packed into mosaics, boxes mapped back per crop."""

from __future__ import annotations

import numpy as np

from tasks.pixels.detector import Box, TextDetector

GAP = 12
"""Blank pixels between crops, so that no detected box spans two of them."""
CROP_PAD = 10
"""Context pixels callers keep around a candidate text line in its crop (the detector needs background around
text to find it)."""


def detect_crops(detector: TextDetector, crops: list[np.ndarray], side: int = 640) -> list[list[Box]]:
    """Boxes found in each of ``crops`` (uint8 (h,w) images), in crop coordinates; mosaics stay within
    ``side`` on each side where the crops allow (the detector's canvas: no downscaling)."""
    found: list[list[Box]] = [[] for _ in crops]
    for placed in _pack([c.shape[:2] for c in crops], side):
        height = max(y + crops[i].shape[0] for i, (x, y) in placed.items())
        width = max(x + crops[i].shape[1] for i, (x, y) in placed.items())
        canvas = np.zeros((height + GAP, width + GAP), np.uint8)
        for i, (x, y) in placed.items():
            h, w = crops[i].shape[:2]
            canvas[y : y + h, x : x + w] = crops[i] if crops[i].ndim == 2 else crops[i].max(axis=2)
        for box in detector.detect(canvas):
            i = _owner(box, placed, crops)
            if i is None:
                continue
            x, y = placed[i]
            h, w = crops[i].shape[:2]
            x0, y0 = max(0, box[0] - x), max(0, box[1] - y)
            x1, y1 = min(w, box[2] - x), min(h, box[3] - y)
            if x1 > x0 and y1 > y0:
                found[i].append((x0, y0, x1, y1))
    return found


def _pack(shapes: list[tuple[int, int]], side: int) -> list[dict[int, tuple[int, int]]]:
    """Shelf packing: crops left to right, a new shelf when the row is full, a new mosaic when it is tall."""
    mosaics: list[dict[int, tuple[int, int]]] = []
    placed: dict[int, tuple[int, int]] = {}
    x = y = shelf = 0
    for i in sorted(range(len(shapes)), key=lambda k: -shapes[k][0]):
        h, w = shapes[i]
        if x and x + w > side:
            x, y, shelf = 0, y + shelf + GAP, 0
        if placed and y + h > side:
            mosaics.append(placed)
            placed, x, y, shelf = {}, 0, 0, 0
        placed[i] = (x + GAP, y + GAP)
        x += w + GAP
        shelf = max(shelf, h)
    if placed:
        mosaics.append(placed)
    return mosaics


INSIDE = 0.5
"""A detected box must lie this much inside one crop: boxes across the gaps (crop edges side by side) are no text."""


def _owner(box: Box, placed: dict[int, tuple[int, int]], crops: list[np.ndarray]) -> int | None:
    """The crop holding most of ``box``, or None when no crop holds ``INSIDE`` of it."""
    best, area = None, INSIDE * (box[2] - box[0]) * (box[3] - box[1])
    for i, (x, y) in placed.items():
        h, w = crops[i].shape[:2]
        ix = min(box[2], x + w) - max(box[0], x)
        iy = min(box[3], y + h) - max(box[1], y)
        if ix > 0 and iy > 0 and ix * iy > area:
            best, area = i, ix * iy
    return best
