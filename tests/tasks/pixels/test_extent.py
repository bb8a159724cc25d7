"""Text rows and columns: strokes plus the thin glyph parts that belong to them."""

from __future__ import annotations

import numpy as np

from tasks.pixels.extent import with_stems, with_thin_glyphs
from tasks.pixels.ink import strokes


def test_a_descender_counts_with_the_strokes_it_hangs_from() -> None:
    ink = np.zeros((40, 60), bool)
    ink[10:20, 10:50] = True  # a line of bold text
    ink[20:25, 30:32] = True  # the two-pixel stem of a "p" below it (within half the line's height)
    solid = strokes(ink)
    rows = solid.sum(axis=1) >= 3
    assert np.flatnonzero(with_stems(solid, rows)).tolist() == list(range(10, 25))
    ink[30:32, 30:32] = True  # a separate speck further down is not part of the line
    assert not with_stems(strokes(ink), rows)[30]


def test_thin_ink_joins_the_text_within_reach() -> None:
    text = np.zeros(50, bool)
    text[10:20] = True
    thin = np.zeros(50, bool)
    thin[22:24] = thin[26:27] = thin[40:42] = True  # two glyph parts in reach (one via the other), one beyond
    assert np.flatnonzero(with_thin_glyphs(thin, text, 3)).tolist() == [*range(10, 20), 22, 23, 26]
