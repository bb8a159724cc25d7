"""Which rows (columns) of a text box hold text: strokes, and the thin glyph parts that belong to them.

A row holds text when it holds at least a few stroke pixels (``tasks.pixels.refine.THIN``); a descender, the
dot of an "i" or the arm of a "+" holds fewer, and a glyph drawn with one-pixel strokes holds none. These
functions add such rows to the text rows they belong to, each within half a line of text already found.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def with_stems(solid: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``rows`` (text rows of ``solid``; pass the transpose for columns) plus the rows, within half the longest
    run of text rows, reached by strokes joined to the strokes of a text row: a descender, a dot or the arm of
    a "+" has too few strokes in its rows to count as text on its own."""
    labels, _ = ndimage.label(solid, structure=np.ones((3, 3), dtype=bool))
    seeds = np.unique(labels[rows])
    seeds = seeds[seeds > 0]
    if not len(seeds):
        return rows
    joined = np.isin(labels, seeds)
    reach = max(1, longest_run(rows) // 2)
    return rows | (joined.any(axis=1) & ndimage.binary_dilation(rows, iterations=reach))


def with_thin_glyphs(thin: np.ndarray, text: np.ndarray, reach: int) -> np.ndarray:
    """``text`` (text rows or columns) plus the runs of ``thin`` ones within ``reach`` of them, repeatedly: a
    glyph drawn with one-pixel strokes (a "%", or a whole string in a thin font) holds few strokes or none. The
    caller says which rows are ``thin``: on a flat background every row holding ink that is not a line crossing
    the box (every ink pixel there is drawn); on a textured one, columns with at least a few such pixels."""
    out = text.copy()
    if not out.any():
        return out
    runs, _ = ndimage.label(thin & ~text)
    while True:
        hit = np.unique(runs[ndimage.binary_dilation(out, iterations=reach) & (runs > 0)])
        new = np.isin(runs, hit) & ~out
        if not new.any():
            return out
        out |= new


def longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of True in a 1-d boolean array."""
    runs, count = ndimage.label(flags)
    return int(np.bincount(runs.ravel())[1:].max()) if count else 0
