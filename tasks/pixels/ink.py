"""Ink in a text box: the pixels that differ from the box's background, and the shapes in them that are not text.

The background is the box's per-channel median; a pixel is ink when it differs from it by more than a contrast
threshold, raised on a textured background (speckle, tissue) to a multiple of the median absolute deviation, and
further towards the brightest ink when annotation text stands far clear of the texture. Ink has the polarity of
the text (``one_polarity``). Strokes are ink in 2×2 blocks; table rules and lines crossing the box are found
so that they hold no side of it.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

CONTRAST = 24
"""Grey levels (8-bit) a pixel must differ from the box background by to count as ink."""

SPREAD = 3.0
"""On a textured background the threshold rises to this many median absolute deviations."""

FLAT = 2
"""A background whose median absolute deviation is at most this many grey levels is flat (blank, a label)."""

SPECK = 2
"""Connected ink components of at most this many pixels are noise (speckle outliers), not strokes."""

BRIGHT = 0.5
"""On a textured background whose brightest ink (``PEAK`` quantile) lies beyond twice the texture threshold, the
threshold moves this far towards that ink: bright annotation text stays ink, speckle grains stop counting."""

PEAK = 0.995
"""Quantile of a box's deviations from its background taken as its brightest ink."""

MINORITY = 0.5
"""Ink of the other polarity is dropped when it holds at most this share of the text polarity's pixels."""

RULE_FILL = 0.9
"""A run of rows whose strokes fill this share of the box width ..."""

RULE_THICK = 4
"""... and that is at most this many rows thick is a rule (a table line, an image edge), not text. Thicker filled
runs (a label's solid background) stay text."""


def ink_mask(views: list[np.ndarray]) -> tuple[np.ndarray, bool]:
    """Pixels of a box that differ from its background in any of ``views`` ((h,w) or (h,w,3) uint8 crops),
    isolated specks removed; and whether the background is flat in every view (no speckle or tissue texture:
    every ink pixel there is drawn)."""
    ink = np.zeros(views[0].shape[:2], dtype=bool)
    flat = True
    for view in views:
        v = view.astype(np.int16).reshape(view.shape[0], view.shape[1], -1)
        bg = np.median(v.reshape(-1, v.shape[2]), axis=0)
        dev = np.abs(v - bg).reshape(-1, v.shape[2])
        mad = np.median(dev, axis=0)
        threshold = np.maximum(CONTRAST, SPREAD * mad)
        peak = np.quantile(dev, PEAK, axis=0)
        flat &= bool((mad <= FLAT).all())
        textured = (SPREAD * mad > CONTRAST) & (peak > 2 * threshold)
        threshold = np.where(textured, threshold + BRIGHT * (peak - threshold), threshold)
        signed = (v - bg).reshape(-1, v.shape[2])
        strongest = np.take_along_axis(signed, np.abs(signed).argmax(axis=1)[:, None], axis=1)[:, 0]
        differs = (dev > threshold).any(axis=1)
        ink |= one_polarity(differs & (strongest > 0), differs & (strongest < 0)).reshape(v.shape[:2])
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    kept = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] > SPECK)
    return np.isin(labels, kept[kept > 0]), flat


def one_polarity(brighter: np.ndarray, darker: np.ndarray) -> np.ndarray:
    """The ink of a box: pixels brighter or darker than its background, but only the side that holds the
    text when the other holds far fewer pixels (``MINORITY``): annotation text has one polarity, and the
    blank outside a scan sector is darker than the speckle that bright text is drawn on."""
    bright, dark = int(brighter.sum()), int(darker.sum())
    if dark <= MINORITY * bright:
        return brighter
    if bright <= MINORITY * dark:
        return darker
    return brighter | darker


def strokes(ink: np.ndarray) -> np.ndarray:
    """Ink pixels that belong to a 2×2 block: strokes, without one-pixel lines and specks. (OpenCV's opening
    with an even kernel shifts the result by a pixel; SciPy's does not.)"""
    return ndimage.binary_opening(ink, structure=np.ones((2, 2), dtype=bool))


def rules(solid: np.ndarray) -> np.ndarray:
    """Rows of ``solid`` that belong to a horizontal rule: runs of at most ``RULE_THICK`` rows each filled to
    ``RULE_FILL`` of the width."""
    filled = solid.mean(axis=1) >= RULE_FILL
    labels, count = ndimage.label(filled)
    if not count:
        return filled
    thick = np.bincount(labels)[1:] > RULE_THICK
    return filled & ~np.concatenate([[False], thick])[labels]


def crossing(ink: np.ndarray) -> np.ndarray:
    """Ink components that touch two or more edges of the box: lines crossing it (a sector edge, a rule, a
    cut corner), not glyphs, which lie inside the box or run out of it on one side."""
    labels, _ = ndimage.label(ink, structure=np.ones((3, 3), dtype=bool))
    edges = [labels[0], labels[-1], labels[:, 0], labels[:, -1]]
    touched = np.concatenate([np.unique(edge[edge > 0]) for edge in edges])
    ids, count = np.unique(touched, return_counts=True)
    return np.isin(labels, ids[count >= 2])
