"""Burned-in PHI removal: ultrasound scan-region blanking and OCR text masking for every pixel format.

Public interface (see ``contracts.md``): :class:`PixelOptions`, :func:`needs_cleaning`, :func:`pixel_action`,
:func:`clean_pixels`, :func:`clean_or_check`, :class:`PixelCleaningResult`. The text detector is created lazily,
once per process.
"""

from tasks.pixels.clean import clean_pixels
from tasks.pixels.options import PixelCleaningResult, PixelOptions
from tasks.pixels.policy import PixelAction, needs_cleaning, pixel_action
from tasks.pixels.step import clean_or_check

__all__ = [
    "PixelAction",
    "PixelCleaningResult",
    "PixelOptions",
    "clean_or_check",
    "clean_pixels",
    "needs_cleaning",
    "pixel_action",
]
