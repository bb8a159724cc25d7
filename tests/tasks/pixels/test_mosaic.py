"""Crops are packed into mosaics without overlap, within the detector's canvas."""

from __future__ import annotations

import numpy as np

from tasks.pixels.mosaic import GAP, _pack


def test_pack_places_every_crop_once_without_overlap():
    rng = np.random.default_rng(0)
    shapes = [(int(rng.integers(10, 60)), int(rng.integers(20, 300))) for _ in range(40)]
    mosaics = _pack(shapes, 640)
    placed = [i for m in mosaics for i in m]
    assert sorted(placed) == list(range(len(shapes)))
    for m in mosaics:
        taken = np.zeros((2000, 2000), bool)
        for i, (x, y) in m.items():
            h, w = shapes[i]
            assert not taken[y : y + h + GAP // 2, x : x + w + GAP // 2].any()
            taken[y : y + h, x : x + w] = True
            assert x + w <= 640 + GAP or x == GAP
