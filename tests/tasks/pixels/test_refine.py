"""Box refinement: shrink to the ink only where the ink provably ends."""

from __future__ import annotations

import cv2
import numpy as np

from tasks.pixels.boxes import Line, coverage, merge_lines, paint, paint_lines
from tasks.pixels.refine import KEEP, line_slabs, refine


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
    ((box, _),) = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _covers(box, ink, image.shape)  # every drawn pixel, anti-aliased edges included
    assert box[0] >= ink[0] - KEEP and box[1] >= ink[1] - KEEP and box[2] <= ink[2] + KEEP and box[3] <= ink[3] + KEEP


def test_text_running_out_of_the_box_keeps_that_side() -> None:
    image, ink = _text_image(np.zeros((80, 220), np.uint8))
    cut = (ink[0] - 10, ink[1] - 10, ink[0] + 60, ink[3] + 10)  # the box ends inside the string
    ((box, _),) = refine(cut, [image[cut[1] : cut[3], cut[0] : cut[2]]])
    assert box[2] == cut[2] and ink[0] - KEEP <= box[0] <= ink[0]


def test_text_on_speckle_is_never_cut() -> None:
    rng = np.random.default_rng(0)
    speckle = np.clip(rng.gamma(2.0, 40.0, (80, 220)), 0, 255)
    image, ink = _text_image(speckle)
    loose = (ink[0] - 12, ink[1] - 10, ink[2] + 12, ink[3] + 10)
    ((box, _),) = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _covers(box, ink, image.shape)


def test_an_empty_box_stays_as_detected() -> None:
    box = (5, 5, 60, 30)
    assert refine(box, [np.zeros((25, 55), np.uint8)]) == [Line(box)]


def test_a_thin_line_crossing_the_box_does_not_hold_a_side() -> None:
    image, ink = _text_image(np.zeros((80, 220), np.uint8))
    image[:, ink[2] + 6] = 200  # a one-pixel sector edge right of the text, top to bottom
    loose = (ink[0] - 12, ink[1] - 10, ink[2] + 12, ink[3] + 10)
    ((box, _),) = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _covers(box, ink, image.shape) and box[1] >= ink[1] - KEEP and box[3] <= ink[3] + KEEP


def test_words_of_one_line_merge_but_lines_do_not() -> None:
    words = [(10, 10, 60, 24), (70, 11, 130, 25), (10, 40, 60, 54)]
    assert sorted(merge_lines(words)) == [(10, 10, 130, 25), (10, 40, 60, 54)]
    far = [(10, 10, 60, 24), (200, 10, 250, 24)]
    assert sorted(merge_lines(far)) == far


def test_a_block_of_lines_splits_and_each_line_shrinks_to_its_own_ink() -> None:
    image = np.zeros((90, 260), np.uint8)
    cv2.putText(image, "DOE^JANE 1961-04-07", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2, cv2.LINE_AA)
    cv2.putText(image, "ID 12", (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2, cv2.LINE_AA)
    ys, xs = np.nonzero(image)
    block = (int(xs.min()) - 6, int(ys.min()) - 6, int(xs.max()) + 7, int(ys.max()) + 7)
    lines = [line.box for line in refine(block, [image[block[1] : block[3], block[0] : block[2]]])]
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


def test_a_rule_under_a_line_of_text_does_not_hold_the_box_open() -> None:
    image, ink = _text_image(np.zeros((80, 220), np.uint8))
    image[ink[3] + 3 : ink[3] + 5, :] = 200  # a 2-pixel table rule under the text, across the whole image
    loose = (ink[0] - 12, ink[1] - 10, ink[2] + 12, ink[3] + 10)
    ((box, _),) = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _covers(box, ink, image.shape) and box[0] >= ink[0] - KEEP and box[2] <= ink[2] + KEEP


def _painted(lines: list[Line], shape: tuple[int, int]) -> np.ndarray:
    return paint(np.zeros(shape, bool), [line.box for line in lines] + [b for line in lines for b in line.extra])


def test_the_blank_beyond_a_sector_edge_does_not_hold_a_side() -> None:
    rng = np.random.default_rng(1)
    background = np.clip(rng.normal(35, 3, (80, 220)), 0, 255)
    yy, xx = np.mgrid[0:80, 0:220]
    background[xx - 130 > yy] = 0  # the black outside a sector, cutting the top-right corner of the box
    image, ink = _text_image(background)
    loose = (ink[0] - 12, ink[1] - 10, ink[2] + 12, ink[3] + 10)
    lines = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _painted(lines, image.shape)[ink[1] : ink[3], ink[0] : ink[2]].all()
    (line,) = lines
    assert line.box[1] >= ink[1] - KEEP and line.box[3] <= ink[3] + KEEP and line.extra == ()


def test_a_wall_crossing_one_end_of_a_line_keeps_the_full_height_only_there() -> None:
    image, ink = _text_image(np.zeros((80, 220), np.uint8))
    drawn = image > 0
    cv2.line(image, (ink[0] + 4, 0), (ink[0] + 14, 79), 180, 8)  # a bright wall of tissue across the left end
    loose = (ink[0] - 12, ink[1] - 10, ink[2] + 12, ink[3] + 10)
    lines = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _painted(lines, image.shape)[drawn].all()  # every pixel of the string stays masked
    (line,) = lines
    assert line.box[1] >= ink[1] - KEEP and line.box[3] <= ink[3] + KEEP
    assert line.extra and all(b[1] == loose[1] and b[3] == loose[3] for b in line.extra)
    assert sum(b[2] - b[0] for b in line.extra) <= 40  # only the strips the wall crosses keep the full height


def test_a_string_in_a_one_pixel_font_is_covered_to_its_last_glyph() -> None:
    image = np.zeros((60, 240), np.uint8)
    cv2.putText(image, "ID 1024-3646 %", (20, 35), cv2.FONT_HERSHEY_PLAIN, 1.2, 255, 1, cv2.LINE_AA)
    ys, xs = np.nonzero(image)
    loose = (int(xs.min()) - 10, int(ys.min()) - 8, int(xs.max()) + 11, int(ys.max()) + 9)
    lines = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _painted(lines, image.shape)[image > 0].all()
    assert all(line.box[2] <= xs.max() + 1 + KEEP and line.box[0] >= xs.min() - KEEP for line in lines)


def test_a_table_rule_between_two_lines_lets_them_split() -> None:
    image = np.zeros((70, 220), np.uint8)
    cv2.putText(image, "AORTA 2.1", (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2, cv2.LINE_AA)
    image[33:35, :] = 200  # a two-pixel table rule
    cv2.putText(image, "LA 3.4", (10, 58), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2, cv2.LINE_AA)
    lines = refine((2, 2, 218, 68), [image[2:68, 2:218]])
    assert len(lines) == 2
    text = image.copy()
    text[33:35, :] = 0
    assert _painted(lines, image.shape)[text > 0].all()


def test_painting_lines_merges_their_boxes_and_adds_their_extra_boxes() -> None:
    lines = [Line((10, 10, 60, 24), ((10, 0, 18, 40),)), Line((70, 11, 130, 25))]
    assert sorted(paint_lines(lines)) == [(10, 0, 18, 40), (10, 10, 130, 25)]


def test_a_string_in_a_one_pixel_font_on_speckle_is_covered_to_its_last_glyph() -> None:
    rng = np.random.default_rng(3)
    image = np.clip(rng.gamma(2.0, 20.0, (60, 240)), 0, 255).astype(np.uint8)
    layer = np.zeros_like(image)
    cv2.putText(layer, "ID 1024-3646", (20, 35), cv2.FONT_HERSHEY_PLAIN, 1.2, 255, 1, cv2.LINE_AA)
    image[layer > 0] = np.maximum(image[layer > 0], layer[layer > 0])
    ys, xs = np.nonzero(layer > 128)
    loose = (int(xs.min()) - 10, int(ys.min()) - 8, int(xs.max()) + 11, int(ys.max()) + 9)
    lines = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _painted(lines, image.shape)[layer > 128].all()


def test_a_wall_across_a_line_leaves_its_one_pixel_descender_masked() -> None:
    image = np.zeros((60, 200), np.uint8)
    image[20:30, 30:170] = 255  # a line of bold strokes
    image[30:37, 120] = 255  # a one-pixel descender hanging from it
    drawn = image > 0
    image[:, 36:44] = 180  # tissue across the left end of the line, top to bottom
    lines = refine((20, 8, 180, 50), [image[8:50, 20:180]])
    (line,) = lines
    assert line.extra  # the wall keeps its strips at full height, the rest of the line shrinks ...
    assert _painted(lines, image.shape)[drawn].all()  # ... but never past the descender
