"""Masking every frame at once gives the same pixels as a broadcast copy, for every array layout."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.pixels.clean import paint_frames

FILLS = [((3, 4, 5), np.uint16(700)), ((3, 4, 5, 3), np.array([0, 128, 128], np.uint8))]


@pytest.mark.parametrize("shape, fill", FILLS)
@pytest.mark.parametrize("fortran", [False, True])
def test_paint_frames_matches_a_broadcast_copy(shape: tuple[int, ...], fill: np.ndarray, fortran: bool) -> None:
    fill = np.asarray(fill)
    rng = np.random.default_rng(0)
    frames = rng.integers(1, 200, shape).astype(fill.dtype)
    if fortran:
        frames = np.asfortranarray(frames)
    expected = np.array(frames)
    mask = rng.random(shape[1:3]) < 0.3
    np.copyto(expected, fill, where=mask[None, :, :, None] if frames.ndim == 4 else mask[None])
    paint_frames(frames, mask, fill)
    assert np.array_equal(frames, expected)
