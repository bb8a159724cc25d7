"""Burned-in PHI removal: ultrasound scan-region blanking and OCR text masking for every pixel format.

Public interface (see ``contracts.md``): :class:`PixelOptions`, :func:`needs_cleaning`, :func:`clean_pixels`,
:class:`PixelCleaningResult`. The text detector is created lazily, once per process.
"""

from tasks.pixels.clean import clean_pixels
from tasks.pixels.options import PixelCleaningResult, PixelOptions
from tasks.pixels.policy import needs_cleaning

__all__ = ["PixelCleaningResult", "PixelOptions", "clean_pixels", "needs_cleaning"]
