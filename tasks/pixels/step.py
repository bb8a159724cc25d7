"""The pixel step of de-identification: clean, check or leave each instance, as the policy says."""

from __future__ import annotations

from pydicom import Dataset

from tasks.config import CleanPixelsMode
from tasks.pixels.check import check_text
from tasks.pixels.clean import clean_pixels
from tasks.pixels.layout import process_cache
from tasks.pixels.options import PixelCleaningResult, PixelOptions
from tasks.pixels.policy import PixelAction, pixel_action


def clean_or_check(ds: Dataset, mode: CleanPixelsMode | str, options: PixelOptions) -> PixelCleaningResult | None:
    """Clean ``ds`` (in place) under ``mode``; None when its pixels are released unchanged (no pixel data, mode
    ``off``, or a checked image without text)."""
    action = pixel_action(ds, mode)
    if action is PixelAction.CLEAN:
        return clean_pixels(ds, options, process_cache(options.layout_file))
    if action is PixelAction.CHECK:
        return check_text(ds, options, process_cache(options.layout_file))
    return None
