"""Ink in a text box: polarity, strokes, rules and lines crossing the box."""

from __future__ import annotations

import numpy as np

from tasks.pixels.ink import crossing, one_polarity, rules, strokes


def test_strokes_stay_in_place_and_lose_one_pixel_lines() -> None:
    ink = np.zeros((8, 8), bool)
    ink[2:4, 2:4] = True  # a 2×2 stroke
    ink[6, :] = True  # a one-pixel line
    assert np.array_equal(np.argwhere(strokes(ink)), [[2, 2], [2, 3], [3, 2], [3, 3]])


def test_a_thin_rule_is_not_text_but_a_filled_label_background_is() -> None:
    solid = np.zeros((30, 50), bool)
    solid[5:8, :] = True  # a 3-row table rule across the box
    solid[15:25, 2:49] = True  # a 10-row filled label background
    solid[12, 10:20] = True  # a stroke
    assert np.flatnonzero(rules(solid)).tolist() == [5, 6, 7]


def test_ink_of_the_other_polarity_is_dropped_only_when_far_smaller() -> None:
    bright = np.zeros(100, bool)
    bright[:40] = True
    small, large = np.zeros(100, bool), np.zeros(100, bool)
    small[50:60] = True
    large[50:90] = True
    assert np.array_equal(one_polarity(bright, small), bright)
    assert np.array_equal(one_polarity(bright, large), bright | large)


def test_lines_crossing_the_box_are_found_and_glyphs_are_not() -> None:
    ink = np.zeros((20, 30), bool)
    ink[:, 25] = True  # a sector edge from top to bottom
    ink[5:9, 5:9] = True  # a glyph
    assert np.array_equal(crossing(ink), np.pad(np.ones((20, 1), bool), ((0, 0), (25, 4))))
