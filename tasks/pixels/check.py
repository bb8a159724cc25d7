"""The text-presence check for CT, MR and other cross-sectional images: judged per series, masked per slice.

Stage one is structural and takes milliseconds (``tasks.pixels.candidates``): strokes far brighter or darker
than their surroundings, grouped into lines. Stage two asks the detector only about candidates that the
series' layout does not already explain: their crops, shelf-packed into one small mosaic
(``tasks.pixels.mosaic``). On the first slice of a series the mosaic also holds the four corners, where
scanners print, at full resolution (text that the structural stage cannot see). Confirmed text joins the
series' layout; every slice of the series is masked with the layout's boxes. A slice without text in a series
without text is left bit-exact.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from pydicom import Dataset

from tasks.pixels import boxes as bx
from tasks.pixels.candidates import text_candidates
from tasks.pixels.clean import RELATIVE_MARGIN, finish, paint_frames
from tasks.pixels.codec import DecodedPixels, decode
from tasks.pixels.detector import Box, TextDetector
from tasks.pixels.imaging import fill_value, gray8
from tasks.pixels.layout import Layout, LayoutCache, series_key
from tasks.pixels.mosaic import CROP_PAD, detect_crops
from tasks.pixels.options import PixelCleaningResult, PixelOptions

log = logging.getLogger(__name__)

CORNER = 0.25
"""Share of the height and width of each corner region the detector sees once per series."""
KNOWN = 0.5
"""A candidate this much covered by the layout's boxes or by regions already judged text-free is not asked again."""


def check_text(ds: Dataset, options: PixelOptions, cache: LayoutCache) -> PixelCleaningResult | None:
    """Mask the text of ``ds`` found by the check (in place, re-encoded); None when the series has no text."""
    started = time.perf_counter()
    pixels = decode(ds, max_bytes=options.max_pixel_bytes)
    detector = options.detector()
    key = series_key(ds)
    layout = cache.get(key)
    first = layout is None
    layout = layout or Layout()
    stats = judge(pixels, ds, detector, layout, first=first)
    cache.put(key, layout)
    if not layout.boxes:
        log.debug("text check: no text (%d candidates, %.3fs)", stats["candidates"], time.perf_counter() - started)
        return None
    h, w = pixels.frames.shape[1:3]
    margin = options.margin_px * max(1, -(-max(h, w) // options.canvas_size))
    mask = bx.paint(np.zeros((h, w), bool), [bx.pad(b, margin, (h, w), RELATIVE_MARGIN) for b in layout.boxes])
    fill = fill_value(pixels.frames, pixels.photometric, ds) if options.fill_value is None else options.fill_value
    paint_frames(pixels.frames, mask, np.asarray(fill, dtype=pixels.frames.dtype))
    report = {
        "region_method": "not-ultrasound",
        "region_fraction": 1.0,
        "boxes": [list(map(int, b)) for b in layout.boxes],
        "verify_boxes": 0,
        "verify_passes": 0,
        "masked_fraction": round(float(mask.mean()), 4),
        "text_masked_fraction": round(float(mask.mean()), 4),
        "margin_px": int(margin),
        "check": stats,
    }
    result = finish(ds, pixels, detector, report, started)
    log.info("text check: %d boxes masked from the series layout", len(layout.boxes))
    return result


def judge(pixels: DecodedPixels, ds: Dataset, detector: TextDetector, layout: Layout, *, first: bool) -> dict:
    """Grow ``layout`` with the text of this instance; return counts (candidates, detector calls)."""
    gray = gray8(pixels.frames, pixels.photometric, ds)
    h, w = gray.shape[1:]
    known = bx.paint(np.zeros((h, w), bool), layout.boxes + layout.rejected)
    asked: list[tuple[int, Box, Box | None]] = []  # (frame or -1, crop, candidate line or None for a corner)
    for i in range(gray.shape[0]):
        for box in text_candidates(gray[i]):
            if bx.coverage(box, known) < KNOWN:
                asked.append((i, bx.pad(box, CROP_PAD, (h, w)), box))
                bx.paint(known, [box])
    candidates = len(asked)
    if first:  # where scanners print: the corners, at full resolution, on the brightest view of the frames
        asked += [(-1, box, None) for box in corners(h, w)]
    if asked:
        view = gray.max(axis=0) if gray.shape[0] > 1 else gray[0]
        crops = [(gray[i] if i >= 0 else view)[b[1] : b[3], b[0] : b[2]] for i, b, _ in asked]
        added = []
        for (_, box, line), found in zip(asked, detect_crops(detector, crops), strict=True):
            if found:  # the detector's boxes, and the whole candidate line it confirmed
                added += [(b[0] + box[0], b[1] + box[1], b[2] + box[0], b[3] + box[1]) for b in found]
                added += [line] if line is not None else []
            elif line is not None:
                layout.rejected.append(box)
        if added:  # a slice the layout explains adds nothing: its boxes stay merged as they are
            layout.boxes = bx.merge_lines(layout.boxes + added)
    layout.uses += 1
    return {"candidates": candidates, "detector_calls": int(bool(asked)), "series_first": first}


def corners(h: int, w: int) -> list[Box]:
    """The four corner regions of an (h, w) image, each ``CORNER`` of its height and width."""
    ch, cw = max(32, round(h * CORNER)), max(32, round(w * CORNER))
    ch, cw = min(ch, h), min(cw, w)
    return [(0, 0, cw, ch), (w - cw, 0, w, ch), (0, h - ch, cw, h), (w - cw, h - ch, w, h)]
