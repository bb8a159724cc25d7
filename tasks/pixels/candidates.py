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
    count, labels, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
    out: list[Box] = []
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i])
        if not (MIN_HEIGHT <= h <= MAX_HEIGHT and w >= 1.5 * h and area >= 0.15 * w * h):
            continue
        inside = strokes[y : y + h, x : x + w] * (labels[y : y + h, x : x + w] == i).astype(np.uint8)
        glyphs, _ = cv2.connectedComponents(inside)
        if glyphs - 1 >= MIN_GLYPHS:
            out.append((x, y, x + w, y + h))
    return out
