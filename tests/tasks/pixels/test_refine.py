"""Box refinement: shrink to the ink only where the ink provably ends."""

from __future__ import annotations

import cv2
import numpy as np

from tasks.pixels.boxes import coverage, merge_lines, paint
from tasks.pixels.refine import KEEP, line_slabs, refine, rules, strokes


def _text_image(background: np.ndarray, org: tuple[int, int] = (20, 40)) -> tuple[np.ndarray, tuple[int, ...]]:
    """``background`` with a white string drawn on it, and the tight box of the drawn ink."""
    layer = np.zeros(background.shape, np.uint8)
    cv2.putText(layer, "DOE^JANE 1961", org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2, cv2.LINE_AA)
    ys, xs = np.nonzero(layer)
    image = np.where(layer > 0, layer, background).astype(np.uint8)
    return image, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _covers(box: tuple[int, ...], ink: tuple[int, ...], shape: tuple[int, int]) -> bool:
    return coverage(ink, paint(np.zeros(shape, bool), [box])) == 1.0


def test_a_loose_box_on_a_dark_background_shrinks_to_the_ink_plus_keep() -> None:
    image, ink = _text_image(np.zeros((80, 220), np.uint8))
    loose = (ink[0] - 12, ink[1] - 10, ink[2] + 12, ink[3] + 10)
    (box,) = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _covers(box, ink, image.shape)  # every drawn pixel, anti-aliased edges included
    assert box[0] >= ink[0] - KEEP and box[1] >= ink[1] - KEEP and box[2] <= ink[2] + KEEP and box[3] <= ink[3] + KEEP


def test_text_running_out_of_the_box_keeps_that_side() -> None:
    image, ink = _text_image(np.zeros((80, 220), np.uint8))
    cut = (ink[0] - 10, ink[1] - 10, ink[0] + 60, ink[3] + 10)  # the box ends inside the string
    (box,) = refine(cut, [image[cut[1] : cut[3], cut[0] : cut[2]]])
    assert box[2] == cut[2] and ink[0] - KEEP <= box[0] <= ink[0]


def test_text_on_speckle_is_never_cut() -> None:
    rng = np.random.default_rng(0)
    speckle = np.clip(rng.gamma(2.0, 40.0, (80, 220)), 0, 255)
    image, ink = _text_image(speckle)
    loose = (ink[0] - 12, ink[1] - 10, ink[2] + 12, ink[3] + 10)
    (box,) = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _covers(box, ink, image.shape)


def test_an_empty_box_stays_as_detected() -> None:
    box = (5, 5, 60, 30)
    assert refine(box, [np.zeros((25, 55), np.uint8)]) == [box]


def test_a_thin_line_crossing_the_box_does_not_hold_a_side() -> None:
    image, ink = _text_image(np.zeros((80, 220), np.uint8))
    image[:, ink[2] + 6] = 200  # a one-pixel sector edge right of the text, top to bottom
    loose = (ink[0] - 12, ink[1] - 10, ink[2] + 12, ink[3] + 10)
    (box,) = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _covers(box, ink, image.shape) and box[1] >= ink[1] - KEEP and box[3] <= ink[3] + KEEP


def test_words_of_one_line_merge_but_lines_do_not() -> None:
    words = [(10, 10, 60, 24), (70, 11, 130, 25), (10, 40, 60, 54)]
    assert sorted(merge_lines(words)) == [(10, 10, 130, 25), (10, 40, 60, 54)]
    far = [(10, 10, 60, 24), (200, 10, 250, 24)]
    assert sorted(merge_lines(far)) == far


def test_strokes_stay_in_place_and_lose_one_pixel_lines() -> None:
    ink = np.zeros((8, 8), bool)
    ink[2:4, 2:4] = True  # a 2×2 stroke
    ink[6, :] = True  # a one-pixel line
    assert np.array_equal(np.argwhere(strokes(ink)), [[2, 2], [2, 3], [3, 2], [3, 3]])


def test_a_block_of_lines_splits_and_each_line_shrinks_to_its_own_ink() -> None:
    image = np.zeros((90, 260), np.uint8)
    cv2.putText(image, "DOE^JANE 1961-04-07", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2, cv2.LINE_AA)
    cv2.putText(image, "ID 12", (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2, cv2.LINE_AA)
    ys, xs = np.nonzero(image)
    block = (int(xs.min()) - 6, int(ys.min()) - 6, int(xs.max()) + 7, int(ys.max()) + 7)
    lines = refine(block, [image[block[1] : block[3], block[0] : block[2]]])
    assert len(lines) == 2
    painted = paint(np.zeros(image.shape, bool), lines)
    assert painted[image > 0].all()  # every drawn pixel stays masked
    assert lines[0][3] >= lines[0][1] + 15 and lines[1][1] < lines[1][3]
    assert lines[1][2] < lines[0][2] - 60  # the short line no longer spans the long line's width


def test_lines_are_not_cut_where_any_ink_bridges_them() -> None:
    ink = np.zeros((30, 40), bool)
    ink[2:10, 5:30] = ink[18:26, 5:20] = True
    rows = ink.sum(axis=1) >= 3
    assert line_slabs(ink, rows, 0, 30) == [(0, 10 + KEEP), (18 - KEEP, 30)]
    ink[14, 7] = True  # one speck in the gap: still cut (other gap rows hold no ink)
    assert len(line_slabs(ink, rows, 0, 30)) == 2
    ink[10:18, 25] = True  # a bridge through every gap row
    assert line_slabs(ink, rows, 0, 30) == [(0, 30)]
    ink[10:18, 25] = False
    ink[14, 7] = False
    ink[16, 30] = True  # thin ink just above the second line, within the rows that line keeps: still cut
    assert len(line_slabs(ink, rows, 0, 30)) == 2


def test_ink_that_neither_line_keeps_prevents_the_cut() -> None:
    ink = np.zeros((40, 40), bool)
    ink[2:10, 5:30] = ink[30:38, 5:20] = True
    rows = ink.sum(axis=1) >= 3
    ink[20, 10:12] = True  # a thin mark half-way between the lines, beyond both lines' KEEP rows
    assert line_slabs(ink, rows, 0, 40) == [(0, 40)]


def test_a_thin_rule_is_not_text_but_a_filled_label_background_is() -> None:
    solid = np.zeros((30, 50), bool)
    solid[5:8, :] = True  # a 3-row table rule across the box
    solid[15:25, 2:49] = True  # a 10-row filled label background
    solid[12, 10:20] = True  # a stroke
    assert np.flatnonzero(rules(solid)).tolist() == [5, 6, 7]


def test_a_rule_under_a_line_of_text_does_not_hold_the_box_open() -> None:
    image, ink = _text_image(np.zeros((80, 220), np.uint8))
    image[ink[3] + 3 : ink[3] + 5, :] = 200  # a 2-pixel table rule under the text, across the whole image
    loose = (ink[0] - 12, ink[1] - 10, ink[2] + 12, ink[3] + 10)
    (box,) = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _covers(box, ink, image.shape) and box[0] >= ink[0] - KEEP and box[2] <= ink[2] + KEEP
