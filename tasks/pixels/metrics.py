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
