"""Shrink a detected text box to the ink it holds, on the sides where the ink provably ends.

Detectors box text loosely (CRAFT's region dilation, DB's unclip ratio) and the cleaner adds a safety margin;
on a real screen with many short lines that margin is most of what gets masked. Refinement looks at the static
appearance of the box (the pixels themselves for a still; the per-pixel median and maximum over frames for a
cine) and finds the ink: pixels that differ from the box's background (its per-channel median) by more than a
contrast threshold. A side moves inwards only when no row (column) of the band along that side holds text-like
ink (at least ``THIN`` pixels: a thin line crossing the box, such as a sector edge, does not count), so text
running out of the box and text on busy speckle keep the full box; the box always keeps ``KEEP`` pixels around
every text row and column it finds. On speckle, annotation text is drawn far brighter than the texture: when the
box's brightest ink stands well clear of the texture threshold, the threshold rises towards it (``BRIGHT``).
A box holding several lines (detectors join lines set close together into one block) is split where rows that
hold no ink at all separate them; each line keeps ``KEEP`` rows around its text and shrinks sideways to its own
ink, by the same edge-band rule.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
from scipy import ndimage

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
BRIGHT = 0.5
"""On a textured background whose brightest ink (``PEAK`` quantile) lies beyond twice the texture threshold, the
threshold moves this far towards that ink: bright annotation text stays ink, speckle grains stop counting."""
PEAK = 0.995
RULE_FILL = 0.9
"""A run of rows whose strokes fill this share of the box width ..."""
RULE_THICK = 4
"""... and that is at most this many rows thick is a rule (a table line, an image edge), not text. Thicker filled
runs (a label's solid background) stay text."""


def ink_mask(views: list[np.ndarray]) -> np.ndarray:
    """Pixels of a box that differ from its background in any of ``views`` ((h,w) or (h,w,3) uint8 crops),
    isolated specks removed."""
    ink = np.zeros(views[0].shape[:2], dtype=bool)
    for view in views:
        v = view.astype(np.int16).reshape(view.shape[0], view.shape[1], -1)
        bg = np.median(v.reshape(-1, v.shape[2]), axis=0)
        dev = np.abs(v - bg).reshape(-1, v.shape[2])
        mad = np.median(dev, axis=0)
        threshold = np.maximum(CONTRAST, SPREAD * mad)
        peak = np.quantile(dev, PEAK, axis=0)
        textured = (SPREAD * mad > CONTRAST) & (peak > 2 * threshold)
        threshold = np.where(textured, threshold + BRIGHT * (peak - threshold), threshold)
        ink |= (dev > threshold).reshape(v.shape).any(axis=2)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    kept = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] > SPECK)
    return np.isin(labels, kept[kept > 0])


def strokes(ink: np.ndarray) -> np.ndarray:
    """Ink pixels that belong to a 2×2 block: strokes, without one-pixel lines and specks. (OpenCV's opening
    with an even kernel shifts the result by a pixel; SciPy's does not.)"""
    return ndimage.binary_opening(ink, structure=np.ones((2, 2), dtype=bool))


def refine(box: Box, views: list[np.ndarray]) -> list[Box]:
    """``box`` shrunk towards its ink (``views`` are crops of exactly ``box``), one box per text line it holds;
    sides whose edge band holds ink stay where they are."""
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    if h <= 2 * (BAND + KEEP) or w <= 2 * (BAND + KEEP):
        return [box]
    ink = ink_mask(views)
    if int(ink.sum()) < MIN_INK:
        return [box]
    solid = strokes(ink)
    solid[rules(solid)] = False
    rows = solid.sum(axis=1) >= THIN  # speckle grains and thin lines crossing the box (a sector edge)
    if not rows.any() or not (solid.sum(axis=0) >= THIN).any():  # are not text: strokes are at least 2×2 pixels
        return [box]
    r = np.flatnonzero(rows)
    top = 0 if rows[:BAND].any() else max(0, r[0] - KEEP)
    bottom = h if rows[-BAND:].any() else min(h, r[-1] + 1 + KEEP)
    out = []
    for a, b in line_slabs(ink, rows, top, bottom):
        cols = solid[a:b].sum(axis=0) >= THIN
        c = np.flatnonzero(cols)
        if not len(c):  # no text-like column in this line (e.g. an underline): keep the full width
            left, right = 0, w
        else:
            left = 0 if cols[:BAND].any() else max(0, c[0] - KEEP)
            right = w if cols[-BAND:].any() else min(w, c[-1] + 1 + KEEP)
        out.append((x0 + left, y0 + a, x0 + right, y0 + b))
    return out


def rules(solid: np.ndarray) -> np.ndarray:
    """Rows of ``solid`` that belong to a horizontal rule: runs of at most ``RULE_THICK`` rows each filled to
    ``RULE_FILL`` of the width."""
    filled = solid.mean(axis=1) >= RULE_FILL
    labels, count = ndimage.label(filled)
    if not count:
        return filled
    thick = np.bincount(labels)[1:] > RULE_THICK
    return filled & ~np.concatenate([[False], thick])[labels]


def line_slabs(ink: np.ndarray, rows: np.ndarray, top: int, bottom: int) -> list[tuple[int, int]]:
    """Row ranges [a, b) of the text lines in rows [top, bottom) (``rows``: text rows), each ``KEEP`` rows beyond
    its text rows, the first from ``top``, the last to ``bottom``. Lines are split between two text rows only where
    rows without any ink (not even a speck) separate them and every row neither line keeps is such a row, so no
    ink between the lines (thin strokes, a rule) is ever left out."""
    empty = ~ink[top:bottom].any(axis=1)
    text = np.flatnonzero(rows[top:bottom]) + top
    starts, ends = [top], []
    for a, b in itertools.pairwise(text):
        between = empty[a + 1 - top : b - top]
        uncovered = between[KEEP : len(between) - KEEP]  # rows neither line keeps: they must hold no ink at all
        if between.any() and uncovered.all():
            ends.append(min(bottom, a + 1 + KEEP))
            starts.append(max(top, b - KEEP))
    ends.append(bottom)
    return list(zip(starts, ends, strict=True))
