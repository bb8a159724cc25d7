"""Decoding de-identified pixel data frames-first, and summary statistics for the manifest."""

from __future__ import annotations

import numpy as np
from pydicom import Dataset
from pydicom.pixels import apply_color_lut

from tasks.errors import PixelError, QuarantineReason

STAT_FRAMES = 32  # statistics on an evenly spaced sample of frames keep big cines cheap


def frames_first(ds: Dataset, pixels: np.ndarray) -> np.ndarray:
    """(H,W) / (H,W,3) / (T,H,W) / (T,H,W,3) → (T,H,W[,3]) using NumberOfFrames and SamplesPerPixel."""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    single = pixels.ndim == (2 if samples == 1 else 3)
    return pixels[None] if single else pixels


def decode(ds: Dataset) -> np.ndarray:
    """Decoded pixels (T,H,W[,3]); YCbCr is converted to RGB, palette colour through its LUT."""
    try:
        pixels = ds.pixel_array
        if str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
            pixels = apply_color_lut(pixels, ds)
    except Exception as exc:  # decoders raise many types; the message may quote values
        raise PixelError(
            f"pixel data (7FE0,0010) could not be decoded ({type(exc).__name__}); "
            "install the decoder plugin for its transfer syntax",
            reason=QuarantineReason.PIXELS_UNDECODABLE,
            step="normalize",
        ) from None
    return frames_first(ds, np.asarray(pixels))


def pixel_stats(frames: np.ndarray) -> dict[str, float]:
    """Mean, std, min, max on a frame sample, and the share of blank (constant) frames over all frames."""
    step = max(1, frames.shape[0] // STAT_FRAMES)
    sample = frames[::step]
    flat = frames.reshape(frames.shape[0], -1)
    blank = flat.max(axis=1) == flat.min(axis=1)
    return {
        "pixel_mean": float(sample.mean(dtype=np.float64)),
        "pixel_std": float(sample.std(dtype=np.float64)),
        "pixel_min": float(sample.min()),
        "pixel_max": float(sample.max()),
        "blank_frame_share": float(blank.mean()) if blank.size else 1.0,
    }
