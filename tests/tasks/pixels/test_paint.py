"""Masking every frame at once gives the same pixels as a broadcast copy, for every array layout and mask shape
(runs copied one by one, or a ragged mask by pixel index)."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.pixels.clean import MAX_RUNS, paint_frames

FILLS = [((3, 4, 5), np.uint16(700)), ((3, 4, 5, 3), np.array([0, 128, 128], np.uint8))]


def _mask(kind: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    if kind == "ragged":  # more runs than MAX_RUNS
        mask = np.zeros((256, 256), bool)
        mask[:, ::2] = rng.random((256, 128)) < 0.9
        assert np.count_nonzero(np.diff(mask.ravel())) > 2 * MAX_RUNS
        return mask
    return {"random": rng.random(shape) < 0.3, "empty": np.zeros(shape, bool), "full": np.ones(shape, bool)}[kind]


@pytest.mark.parametrize("shape, fill", FILLS)
@pytest.mark.parametrize("fortran", [False, True])
@pytest.mark.parametrize("kind", ["random", "ragged", "empty", "full"])
def test_paint_frames_matches_a_broadcast_copy(
    shape: tuple[int, ...], fill: np.ndarray, fortran: bool, kind: str
) -> None:
    fill = np.asarray(fill)
    rng = np.random.default_rng(0)
    mask = _mask(kind, rng, shape[1:3])
    shape = (shape[0], *mask.shape, *shape[3:])
    frames = rng.integers(1, 200, shape).astype(fill.dtype)
    if fortran:
        frames = np.asfortranarray(frames)
    expected = np.array(frames)
    np.copyto(expected, fill, where=mask[None, :, :, None] if frames.ndim == 4 else mask[None])
    paint_frames(frames, mask, fill)
    assert np.array_equal(frames, expected)
