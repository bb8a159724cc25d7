"""Box refinement: shrink to the ink only where the ink provably ends."""

from __future__ import annotations

import cv2
import numpy as np

from tasks.pixels.boxes import coverage, merge_lines, paint
from tasks.pixels.refine import KEEP, refine


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
    box = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _covers(box, ink, image.shape)  # every drawn pixel, anti-aliased edges included
    assert box[0] >= ink[0] - KEEP and box[1] >= ink[1] - KEEP and box[2] <= ink[2] + KEEP and box[3] <= ink[3] + KEEP


def test_text_running_out_of_the_box_keeps_that_side() -> None:
    image, ink = _text_image(np.zeros((80, 220), np.uint8))
    cut = (ink[0] - 10, ink[1] - 10, ink[0] + 60, ink[3] + 10)  # the box ends inside the string
    box = refine(cut, [image[cut[1] : cut[3], cut[0] : cut[2]]])
    assert box[2] == cut[2] and ink[0] - KEEP <= box[0] <= ink[0]


def test_text_on_speckle_is_never_cut() -> None:
    rng = np.random.default_rng(0)
    speckle = np.clip(rng.gamma(2.0, 40.0, (80, 220)), 0, 255)
    image, ink = _text_image(speckle)
    loose = (ink[0] - 12, ink[1] - 10, ink[2] + 12, ink[3] + 10)
    box = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _covers(box, ink, image.shape)


def test_an_empty_box_stays_as_detected() -> None:
    box = (5, 5, 60, 30)
    assert refine(box, [np.zeros((25, 55), np.uint8)]) == box


def test_a_thin_line_crossing_the_box_does_not_hold_a_side() -> None:
    image, ink = _text_image(np.zeros((80, 220), np.uint8))
    image[:, ink[2] + 6] = 200  # a one-pixel sector edge right of the text, top to bottom
    loose = (ink[0] - 12, ink[1] - 10, ink[2] + 12, ink[3] + 10)
    box = refine(loose, [image[loose[1] : loose[3], loose[0] : loose[2]]])
    assert _covers(box, ink, image.shape) and box[1] >= ink[1] - KEEP and box[3] <= ink[3] + KEEP


def test_words_of_one_line_merge_but_lines_do_not() -> None:
    words = [(10, 10, 60, 24), (70, 11, 130, 25), (10, 40, 60, 54)]
    assert sorted(merge_lines(words)) == [(10, 10, 130, 25), (10, 40, 60, 54)]
    far = [(10, 10, 60, 24), (200, 10, 250, 24)]
    assert sorted(merge_lines(far)) == far
