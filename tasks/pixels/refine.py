"""Shrink a detected text box to the ink it holds, on the sides where the ink provably ends.

Detectors box text loosely (CRAFT's region dilation, DB's unclip ratio) and the cleaner adds a safety margin;
on a real screen with many short lines that margin is most of what gets masked. Refinement looks at the static
appearance of the box (the pixels themselves for a still; the per-pixel median and maximum over frames for a
cine) and finds its ink (``tasks.pixels.ink``) and the rows and columns that hold text (``tasks.pixels.extent``:
rows with strokes, plus the descenders, dots and one-pixel glyphs that belong to them). A side moves inwards only
when no row (column) of the band along that side holds text, so text running out of the box and text on busy
speckle keep the full box; the box always keeps ``KEEP`` pixels around the text it finds (``KEEP_FLAT`` on a
flat background, where every drawn pixel is ink).

A box holding several lines (detectors join lines set close together into one block) is split where rows that
hold no ink separate them; each line shrinks sideways to its own text by the same edge-band rule. Where a line
still reaches the box's top or bottom edge because something crosses that edge at one place (a wall of tissue,
a speckle grain), only the column strips it crosses keep the full height (``strips``).
"""

from __future__ import annotations

import itertools

import numpy as np

from tasks.pixels.boxes import Line
from tasks.pixels.detector import Box
from tasks.pixels.extent import longest_run, with_stems, with_thin_glyphs
from tasks.pixels.ink import crossing, ink_mask, rules, strokes

BAND = 2
"""Width in pixels of the edge band that must be free of ink before a side moves."""

KEEP = 4
"""Pixels kept around the ink on a textured background (the raised threshold misses faint and thin parts of
glyphs there) ..."""

KEEP_FLAT = 2
"""... and on a flat one, where every drawn pixel is ink (only anti-aliased edges fall below the threshold)."""

MIN_INK = 4
"""Fewer ink pixels than this: nothing reliable to shrink to; the box stays as detected."""

THIN = 3
"""A row or column with fewer ink pixels than this is crossed by a thin line or holds specks, not text."""

STRIP = 8
"""Width in pixels of the column strips a line is split into where ink crosses its top or bottom edge."""


def refine(box: Box, views: list[np.ndarray]) -> list[Line]:
    """``box`` shrunk towards its ink (``views`` are crops of exactly ``box``): the text lines it holds; sides
    whose edge band holds ink stay where they are."""
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    if h <= 2 * (BAND + KEEP) or w <= 2 * (BAND + KEEP):
        return [Line(box)]
    ink, flat = ink_mask(views)
    if int(ink.sum()) < MIN_INK:
        return [Line(box)]
    solid = strokes(ink)
    ruled = rules(solid)
    solid[ruled] = False
    rows = solid.sum(axis=1) >= THIN  # speckle grains and thin lines crossing the box (a sector edge)
    if not rows.any() or not (solid.sum(axis=0) >= THIN).any():  # are not text: strokes are at least 2×2 pixels
        return [Line(box)]
    rows = with_stems(solid, rows)
    drawn = ink & ~crossing(ink & ~solid)  # thin lines crossing the box (a sector edge) are not glyphs
    marks = solid | drawn if flat else solid  # what counts as text in a column strip
    if flat:
        rows = with_thin_glyphs(drawn.any(axis=1), rows, max(1, longest_run(rows) // 2))
    r = np.flatnonzero(rows)
    keep = KEEP_FLAT if flat else KEEP
    top = 0 if rows[:BAND].any() else max(0, r[0] - keep)
    bottom = h if rows[-BAND:].any() else min(h, r[-1] + 1 + keep)
    out = []
    for a, b in line_slabs(ink & ~ruled[:, None], rows, top, bottom, keep):
        cols = with_stems(solid[a:b].T, solid[a:b].sum(axis=0) >= THIN)
        thin = drawn[a:b].any(axis=0) if flat else drawn[a:b].sum(axis=0) >= THIN
        cols = with_thin_glyphs(thin, cols, max(1, longest_run(rows[a:b]) // 2))
        c = np.flatnonzero(cols)
        if not len(c):  # no text-like column in this line (e.g. an underline): keep the full width
            left, right = 0, w
        else:
            left = 0 if cols[:BAND].any() else max(0, c[0] - keep)
            right = w if cols[-BAND:].any() else min(w, c[-1] + 1 + keep)
        (top_c, bottom_c), held = strips(marks, a, b, left, right, keep)
        extra = tuple((x0 + c0, y0 + r0, x0 + c1, y0 + r1) for c0, r0, c1, r1 in held)
        out.append(Line((x0 + left, y0 + top_c, x0 + right, y0 + bottom_c), extra))
    return out


def strips(
    marks: np.ndarray, a: int, b: int, left: int, right: int, keep: int = KEEP
) -> tuple[tuple[int, int], list[Box]]:
    """Rows ``(top, bottom)`` of the line [a, b) × [left, right) of a box, and the column ranges that must keep
    the full rows [a, b) (as boxes (left, a, right, b)). Where the line still reaches the box's top (bottom) edge
    because ink crosses that edge somewhere (a wall of tissue, a speckle grain), the line is cut into
    ``STRIP``-wide column strips; a strip whose own edge band holds text ``marks`` (strokes; on a flat
    background every drawn pixel) keeps the full rows, the others take the rows of all such strips' marks plus
    ``keep``, so no glyph part that counts as text in the whole line is cut in a strip."""
    h = marks.shape[0]
    whole = (a, b), []
    if (a > 0 and b < h) or right - left < 2 * STRIP:
        return whole
    bounds = list(range(left, right - STRIP, STRIP)) or [left]  # the last strip takes the remainder
    ends = [*bounds[1:], right]
    held: list[tuple[int, int]] = []
    extents: list[tuple[int, int]] = []
    for c0, c1 in zip(bounds, ends, strict=True):
        st = marks[a:b, c0:c1].any(axis=1)
        if (a == 0 and st[:BAND].any()) or (b == h and st[-BAND:].any()):
            if held and held[-1][1] == c0:
                held[-1] = (held[-1][0], c1)
            else:
                held.append((c0, c1))
        elif st.any():
            rs = np.flatnonzero(st)
            extents.append((max(a, a + rs[0] - keep), min(b, a + rs[-1] + 1 + keep)))
    if not extents or not held:
        return whole
    core = min(e[0] for e in extents), max(e[1] for e in extents)
    return core, [(c0, a, c1, b) for c0, c1 in held]


def line_slabs(ink: np.ndarray, rows: np.ndarray, top: int, bottom: int, keep: int = KEEP) -> list[tuple[int, int]]:
    """Row ranges [a, b) of the text lines in rows [top, bottom) (``rows``: text rows), each ``KEEP`` rows beyond
    its text rows, the first from ``top``, the last to ``bottom``. Lines are split between two text rows only where
    rows without any ink (not even a speck) separate them and every row neither line keeps is such a row, so no
    ink between the lines (thin strokes) is ever left out. (The caller removes the rows of a table rule from
    ``ink``: a rule between two lines is not text.)"""
    empty = ~ink[top:bottom].any(axis=1)
    text = np.flatnonzero(rows[top:bottom]) + top
    starts, ends = [top], []
    for a, b in itertools.pairwise(text):
        between = empty[a + 1 - top : b - top]
        uncovered = between[keep : len(between) - keep]  # rows neither line keeps: they must hold no ink at all
        if between.any() and uncovered.all():
            ends.append(min(bottom, a + 1 + keep))
            starts.append(max(top, b - keep))
    ends.append(bottom)
    return list(zip(starts, ends, strict=True))
