"""Recall and over-masking of a cleaning mask against labelled text boxes."""

from __future__ import annotations

import numpy as np

from tasks.pixels.boxes import coverage, paint
from tasks.pixels.detector import Box

MASKED_ENOUGH = 0.95
"""A labelled box counts as removed when at least this share of its pixels is masked."""


def recalled(mask: np.ndarray, labels: list[Box], threshold: float = MASKED_ENOUGH) -> list[bool]:
    """Per labelled box: is at least ``threshold`` of it masked?"""
    return [coverage(box, mask) >= threshold for box in labels]


def over_masking(text_mask: np.ndarray, region: np.ndarray | None, labels: list[Box]) -> float:
    """Share of scan-region pixels that the text masking removed although they held no labelled text."""
    keep = np.ones(text_mask.shape, bool) if region is None else region
    text = paint(np.zeros(text_mask.shape, bool), labels)
    return float((text_mask & keep & ~text).sum() / max(1, keep.sum()))


VISIBLE = 24
"""Grey levels (8-bit, any channel) by which a pixel must differ from black to show anything, and by which a
written pixel must differ from the original to count as changed (above JPEG re-encoding noise)."""


def removed_in_pixels(
    before: np.ndarray, after: np.ndarray, labels: list[Box], threshold: float = MASKED_ENOUGH
) -> list[bool]:
    """Per labelled box, judged on written pixels: did at least ``threshold`` of the box's visible pixels (those
    not already black in ``before``) change in ``after``? ``before``/``after``: one frame as 8-bit (H,W) or
    (H,W,3), the original and the output re-read from disk."""
    b, a = _channels(before), _channels(after)
    visible = b.max(axis=-1) > VISIBLE
    changed = np.abs(a - b).max(axis=-1) > VISIBLE
    out = []
    for x0, y0, x1, y1 in labels:
        seen = visible[y0:y1, x0:x1]
        out.append(bool(seen.sum() == 0 or changed[y0:y1, x0:x1][seen].mean() >= threshold))
    return out


def _channels(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.int16)
    return image[..., None] if image.ndim == 2 else image
