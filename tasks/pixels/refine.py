"""Shrink a detected text box to the ink it holds, on the sides where the ink provably ends.

Detectors box text loosely (CRAFT's region dilation, DB's unclip ratio) and the cleaner adds a safety margin;
on a real screen with many short lines that margin is most of what gets masked. Refinement looks at the static
appearance of the box (the pixels themselves for a still; the per-pixel median and maximum over frames for a
cine) and finds the ink: pixels that differ from the box's background (its per-channel median) by more than a
contrast threshold. A side moves inwards only when no row (column) of the band along that side holds text-like
ink (at least ``THIN`` pixels: a thin line crossing the box, such as a sector edge, does not count), so text
running out of the box and text on busy speckle keep the full box; the box always keeps ``KEEP`` pixels around
every text row and column it finds.
"""

from __future__ import annotations

import cv2
import numpy as np

from tasks.pixels.detector import Box

CONTRAST = 24
"""Grey levels (8-bit) a pixel must differ from the box background by to count as ink."""
SPREAD = 3.0
"""On a textured background the threshold rises to this many median absolute deviations."""
BAND = 2
"""Width in pixels of the edge band that must be free of ink before a side moves."""
KEEP = 4
"""Pixels kept around the ink (anti-aliased edges fall below the contrast threshold)."""
MIN_INK = 4
"""Fewer ink pixels than this: nothing reliable to shrink to; the box stays as detected."""
THIN = 3
"""A row or column with fewer ink pixels than this is crossed by a thin line or holds specks, not text."""
SPECK = 2
"""Connected ink components of at most this many pixels are noise (speckle outliers), not strokes."""


def ink_mask(views: list[np.ndarray]) -> np.ndarray:
    """Pixels of a box that differ from its background in any of ``views`` ((h,w) or (h,w,3) uint8 crops),
    isolated specks removed."""
    ink = np.zeros(views[0].shape[:2], dtype=bool)
    for view in views:
        v = view.astype(np.int16).reshape(view.shape[0], view.shape[1], -1)
        bg = np.median(v.reshape(-1, v.shape[2]), axis=0)
        dev = np.abs(v - bg)
        mad = np.median(dev.reshape(-1, v.shape[2]), axis=0)
        ink |= (dev > np.maximum(CONTRAST, SPREAD * mad)).any(axis=2)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    strokes = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] > SPECK)
    return np.isin(labels, strokes[strokes > 0])


def refine(box: Box, views: list[np.ndarray]) -> Box:
    """``box`` shrunk towards its ink (``views`` are crops of exactly ``box``); sides whose edge band holds
    ink stay where they are."""
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    if h <= 2 * (BAND + KEEP) or w <= 2 * (BAND + KEEP):
        return box
    ink = ink_mask(views)
    if int(ink.sum()) < MIN_INK:
        return box
    solid = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)).astype(bool)
    rows = solid.sum(axis=1) >= THIN  # speckle grains and thin lines crossing the box (a sector edge)
    cols = solid.sum(axis=0) >= THIN  # are not text: strokes are at least 2×2 pixels
    if not rows.any() or not cols.any():
        return box
    r, c = np.flatnonzero(rows), np.flatnonzero(cols)
    top = 0 if rows[:BAND].any() else max(0, r[0] - KEEP)
    bottom = h if rows[-BAND:].any() else min(h, r[-1] + 1 + KEEP)
    left = 0 if cols[:BAND].any() else max(0, c[0] - KEEP)
    right = w if cols[-BAND:].any() else min(w, c[-1] + 1 + KEEP)
    return x0 + left, y0 + top, x0 + right, y0 + bottom
