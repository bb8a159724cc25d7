"""Views of the working array: 8-bit gray for region finding and composites, RGB for detection and output,
and the value that paints a pixel black in each photometric interpretation."""

from __future__ import annotations

import cv2
import numpy as np
from pydicom import Dataset
from pydicom.pixels import apply_color_lut

# YBR_FULL → RGB (PS3.3 C.7.6.3.1.2), as a cv2.transform matrix with offsets in the last column.
_YBR_TO_RGB = np.array(
    [
        [1.0, 0.0, 1.402, -1.402 * 128],
        [1.0, -0.344136, -0.714136, (0.344136 + 0.714136) * 128],
        [1.0, 1.772, 0.0, -1.772 * 128],
    ],
    dtype=np.float32,
)


def ybr_to_rgb(frames: np.ndarray) -> np.ndarray:
    """8-bit YBR_FULL (…,H,W,3) to RGB, fast (cv2.transform, saturating)."""
    flat = frames.reshape(-1, frames.shape[-2], 3)
    return cv2.transform(flat, _YBR_TO_RGB).reshape(frames.shape)


def palette_rgb(ds: Dataset, bits_allocated: int) -> np.ndarray:
    """The palette as an (N,3) RGB table indexed by stored value (N = 2**bits)."""
    index = np.arange(2 ** min(bits_allocated, 16), dtype=np.uint16 if bits_allocated > 8 else np.uint8)
    return apply_color_lut(index, ds)


def to_rgb(frames: np.ndarray, photometric: str, ds: Dataset) -> np.ndarray:
    """Output view: RGB for colour (palette applied, YBR converted), frames unchanged for monochrome."""
    if photometric in {"YBR_FULL", "YBR_FULL_422"}:
        return ybr_to_rgb(frames) if frames.dtype == np.uint8 else frames
    if photometric == "PALETTE COLOR":
        return palette_rgb(ds, frames.dtype.itemsize * 8)[frames]
    return frames


def _scale8(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    if values.dtype == np.uint8 and lo == 0 and hi == 255:
        return values
    out = (values.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(out, 0, 255).astype(np.uint8)


def gray8(frames: np.ndarray, photometric: str, ds: Dataset) -> np.ndarray:
    """(T,H,W) uint8 brightness: luminance Y for YBR, max of R,G,B for RGB and palette (coloured text on a dark
    background stays bright), min–max scaled intensity for monochrome (inverted for MONOCHROME1)."""
    if photometric in {"YBR_FULL", "YBR_FULL_422"}:
        y = frames[..., 0]
        return y if y.dtype == np.uint8 else _scale8(y, float(y.min()), float(y.max()))
    if photometric == "PALETTE COLOR":
        table = palette_rgb(ds, frames.dtype.itemsize * 8).max(axis=1)
        return _scale8(table, float(table.min()), float(table.max()))[frames]
    if frames.ndim == 4:
        v = frames.max(axis=-1)
        return v if v.dtype == np.uint8 else _scale8(v, float(v.min()), float(v.max()))
    lo, hi = float(frames.min()), float(frames.max())
    g = _scale8(frames, lo, hi)
    return 255 - g if photometric == "MONOCHROME1" else g


def rgb8(frame: np.ndarray, photometric: str, ds: Dataset) -> np.ndarray:
    """One frame as an 8-bit RGB (H,W,3) or gray (H,W) image for the detector."""
    if photometric in {"YBR_FULL", "YBR_FULL_422"} and frame.dtype == np.uint8:
        return ybr_to_rgb(frame)
    if photometric == "PALETTE COLOR":
        rgb = palette_rgb(ds, frame.dtype.itemsize * 8)[frame]
        return rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)
    if frame.ndim == 3:
        if frame.dtype == np.uint8:
            return frame
        return _scale8(frame, float(frame.min()), float(frame.max()))
    return gray8(frame[None], photometric, ds)[0]


def fill_value(frames: np.ndarray, photometric: str, ds: Dataset) -> np.ndarray:
    """What "black" is in the stored space: minimum (MONOCHROME2), maximum (MONOCHROME1), zero RGB, Y=0 with
    neutral chroma for YBR, the darkest palette entry for PALETTE COLOR (masking happens in index space)."""
    if photometric in {"YBR_FULL", "YBR_FULL_422"}:
        mid = 1 << (frames.dtype.itemsize * 8 - 1)
        return np.array([0, mid, mid], dtype=frames.dtype)
    if photometric == "PALETTE COLOR":
        table = palette_rgb(ds, frames.dtype.itemsize * 8).astype(np.int64).sum(axis=1)
        return np.array(int(np.argmin(table)), dtype=frames.dtype)
    if frames.ndim == 4:
        return np.zeros(3, dtype=frames.dtype)
    if photometric == "MONOCHROME1":
        return np.array(frames.max(), dtype=frames.dtype)
    return np.array(frames.min(), dtype=frames.dtype)
