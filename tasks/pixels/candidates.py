"""Where text could be, found structurally in milliseconds: the cheap first stage of the CT/MR text check.

Burned-in characters are thin strokes far brighter (or darker) than their surroundings. A morphological top-hat
and black-hat keep exactly such structures; closing along rows joins the glyphs of a word; components of a
text line's height that are wider than tall and hold several glyphs are candidates. Anatomy yields a few false
candidates (bone edges, vessels); the detector decides on crops of them (``tasks.pixels.check``), so this stage
only has to not miss text, never to be sure of it.
"""

from __future__ import annotations

import cv2
import numpy as np

from tasks.pixels.detector import Box

CONTRAST = 60
"""Grey levels (8-bit) by which a stroke must stand out of a 9×9 neighbourhood's opening/closing."""
KERNEL = 9
"""Top-hat size: strokes thinner than this survive (text up to ~40 px tall has thinner strokes)."""
MIN_HEIGHT, MAX_HEIGHT = 5, 48
"""Heights of a text line, in pixels."""
MIN_GLYPHS = 2
"""Separate stroke components a line must hold (a name has several letters; a vessel is one stroke)."""


def text_candidates(gray: np.ndarray) -> list[Box]:
    """Boxes in ``gray`` (H,W) uint8 that may hold a line of bright or of dark text."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (KERNEL, KERNEL))
    out: list[Box] = []
    for op in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT):  # one polarity at a time: the gaps of bright text are dark
        out += _lines((cv2.morphologyEx(gray, op, kernel) > CONTRAST).astype(np.uint8))
    return out


def _lines(strokes: np.ndarray) -> list[Box]:
    """Line-shaped groups of several stroke components in the 0/1 map ``strokes``."""
    lines = cv2.morphologyEx(strokes, cv2.MORPH_CLOSE, np.ones((1, 7), np.uint8))
    labels, stats = components(lines)
    out: list[Box] = []
    for i, (x, y, w, h, area) in enumerate(stats.tolist(), start=1):
        if not (MIN_HEIGHT <= h <= MAX_HEIGHT and w >= 1.5 * h and area >= 0.15 * w * h):
            continue
        inside = strokes[y : y + h, x : x + w] * (labels[y : y + h, x : x + w] == i).astype(np.uint8)
        glyphs, _ = cv2.connectedComponents(inside)
        if glyphs - 1 >= MIN_GLYPHS:
            out.append((x, y, x + w, y + h))
    return out


def components(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected components of the sparse 0/1 map ``binary``: labels, and per component 1..n its (x, y, width,
    height, area), as ``cv2.connectedComponentsWithStats`` gives them, from the set pixels only (four times
    faster on a slice, where strokes are a few thousand of its pixels)."""
    _, labels = cv2.connectedComponents(binary, connectivity=8)
    points = cv2.findNonZero(binary)
    if points is None:
        return labels, np.zeros((0, 5), np.int64)
    points = points.reshape(-1, 2).astype(np.int64)
    xs, ys = points[:, 0], points[:, 1]
    label = labels[ys, xs]
    order = np.argsort(label, kind="stable")
    label, xs, ys = label[order], xs[order], ys[order]
    starts = np.flatnonzero(np.r_[True, label[1:] != label[:-1]])
    x0, x1 = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts)
    y0, y1 = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts)
    area = np.diff(np.r_[starts, len(label)])
    return labels, np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1, area], axis=1)
