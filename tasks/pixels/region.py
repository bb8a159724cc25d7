"""The ultrasound scan region (the "pre-defined scanning sector"): what to keep; the rest is blanked.

Methods, in order of preference, recorded in the cleaning report:

- ``"ultrasound-regions"``: the union of the SequenceOfUltrasoundRegions (0018,6011) boxes, when present.
- ``"cine-motion"``: for a cine, the pixels that change over time (temporal range), cleaned up morphologically;
  the largest moving component, filled to its convex hull (a sector is convex), slightly dilated.
- ``"none-fallback"``: a single frame (or a cine that barely moves) without ultrasound regions. Nothing is
  blanked. Guessing a sector from one frame (e.g. the largest bright component) cuts dark anatomy such as
  fluid-filled structures out of the image, and it is not needed for safety: OCR masks text anywhere in the
  frame, so the conservative choice is to keep the pixels and rely on OCR.
- ``"not-ultrasound"``: other modalities (secondary captures, photographs) are never blanked, only OCR-masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydicom import Dataset

MIN_MOVING_FRACTION = 0.02
"""A cine whose moving component covers less of the frame than this is treated as static (fallback)."""


@dataclass(frozen=True)
class ScanRegion:
    """Pixels to keep (``mask`` True) and how they were found; ``mask`` None means keep everything."""

    method: str
    mask: np.ndarray | None

    @property
    def kept_fraction(self) -> float:
        return 1.0 if self.mask is None else float(self.mask.mean())


def regions_from_header(ds: Dataset, shape: tuple[int, int]) -> np.ndarray | None:
    """Union of the SequenceOfUltrasoundRegions boxes as a boolean mask, or None if absent or unusable."""
    seq = ds.get("SequenceOfUltrasoundRegions")
    if not seq:
        return None
    h, w = shape
    mask = np.zeros(shape, dtype=bool)
    for item in seq:
        try:
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
        except (AttributeError, TypeError, ValueError):
            continue
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w - 1, x1), min(h - 1, y1)
        if x1 >= x0 and y1 >= y0:
            mask[y0 : y1 + 1, x0 : x1 + 1] = True  # Max X1/Y1 are inclusive
    return mask if mask.any() else None


def region_from_motion(gray: np.ndarray, *, threshold: int = 12) -> np.ndarray | None:
    """Moving region of a cine ``gray`` (T,H,W) uint8: temporal range, cleanup, largest component, convex hull."""
    if gray.shape[0] < 3:
        return None
    step = max(1, gray.shape[0] // 32)
    sample = gray[::step]
    motion = (sample.max(axis=0).astype(np.int16) - sample.min(axis=0)) > threshold
    h, w = motion.shape
    k = max(3, (min(h, w) // 60) | 1)
    moving = cv2.morphologyEx(motion.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    moving = cv2.morphologyEx(moving, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(moving, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[largest, cv2.CC_STAT_AREA] < MIN_MOVING_FRACTION * h * w:
        return None
    points = cv2.findNonZero((labels == largest).astype(np.uint8))
    hull = cv2.convexHull(points)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    mask = cv2.dilate(mask, np.ones((k, k), np.uint8))
    return mask.astype(bool)


def scan_region(ds: Dataset, gray: np.ndarray) -> ScanRegion:
    """The region to keep for ``ds`` given its frames as 8-bit gray ``gray`` (T,H,W)."""
    if str(ds.get("Modality", "")).upper() not in {"US", "IVUS"}:
        return ScanRegion("not-ultrasound", None)
    shape = gray.shape[1:3]
    mask = regions_from_header(ds, shape)
    if mask is not None:
        return ScanRegion("ultrasound-regions", mask)
    mask = region_from_motion(gray)
    if mask is not None:
        return ScanRegion("cine-motion", mask)
    return ScanRegion("none-fallback", None)
