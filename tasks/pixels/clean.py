"""Clean the pixels of one instance: decode, blank outside the scan region, mask text, verify, write back.

One mask (H,W) is built for the whole instance and applied to every frame: burned-in overlays are static
across a cine, so detection runs on two temporal composites (median and maximum; ``sample_frames`` adds
frames, ``ocr_every_frame`` uses every frame). Each box gets a margin, then shrinks to its ink where the ink
provably ends (``tasks.pixels.refine``); words of a line merge into one box. Verification re-detects on the
cleaned median composite (the frame for a still), cropped to the scan region; new text is masked and counted,
and text still found by the last of ``verify_passes`` passes quarantines the file (TEXT_PERSISTS).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from pydicom import Dataset

from tasks.errors import PixelError, QuarantineReason
from tasks.pixels import boxes as bx
from tasks.pixels.candidates import text_candidates
from tasks.pixels.codec import DecodedPixels, decode, mark_lossy_history, write_back
from tasks.pixels.composite import MEDIAN_FRAMES, max_image, median_image, sample_indices
from tasks.pixels.detector import Box, TextDetector
from tasks.pixels.imaging import fill_value, gray8, rgb8, to_rgb
from tasks.pixels.layout import Layout, LayoutCache, device_key
from tasks.pixels.mosaic import CROP_PAD, detect_crops
from tasks.pixels.options import PixelCleaningResult, PixelOptions
from tasks.pixels.refine import refine
from tasks.pixels.region import ScanRegion, scan_region

log = logging.getLogger(__name__)

BATCH = {"cpu": 1, "cuda": 4}
"""Images per detector call (one forward pass). One on a CPU: the memory-bound layers (ReLU, pooling) slow down
per image in larger batches there; a few on a GPU, bounded for memory in every-frame mode."""

THICK_LIMIT = 0.12
"""In verification, a box thicker than this share of the longest side in both directions is not a remnant
(text lines are thin across their direction of writing; detectors sometimes box a whole patch of speckle)."""
BLOB_LIMIT = 0.25
"""A detected box thicker than this share of the longest side in both directions is a patch of speckle, not
text (a block of five 15-pixel lines is ~75 pixels thick on a 640-pixel frame); it is dropped, not masked."""
RELATIVE_MARGIN = 0.2
"""Each box also grows by this share of its text height: box accuracy scales with the text size."""
VERIFY_CONTEXT = 16
"""Pixels around the scan region's bounding box that verification looks at (outside it, all is blank)."""
COVERED = 0.9
"""A box re-detected during verification counts as new text unless this share of it is already masked."""


def clean_pixels(
    ds: Dataset, options: PixelOptions, layouts: LayoutCache | None = None, detector: TextDetector | None = None
) -> PixelCleaningResult:
    """Decode, blank outside the scan region, mask text, verify and re-encode ``ds`` in place.

    With ``layouts``, the text layout of this device (``tasks.pixels.layout.device_key``) is reused when it still
    holds, and recorded after full detection. Raises PixelError (PIXELS_UNDECODABLE, TOO_LARGE, TEXT_PERSISTS,
    ENCODE_FAILED); ``ds`` must then not be released. ``detector`` defaults to the one ``options`` name.
    """
    started = time.perf_counter()
    pixels = decode(ds, max_bytes=options.max_pixel_bytes)
    detector = detector or options.detector()
    key = device_key(ds) if layouts is not None and not options.ocr_every_frame else None
    known = layouts.get(key) if key is not None else None
    masked = clean_frames(pixels, ds, detector, options, None if known is None else known.boxes)
    outcome = masked.report
    if key is not None and outcome["layout"] != "reused":
        layouts.put(key, Layout(boxes=masked.layout), persist=True)
    result = finish(ds, pixels, detector, outcome, started)
    log.info(
        "pixels cleaned: %d frames, region %s, layout %s, %d boxes, %d verify boxes, %.2fs",
        outcome["frames"],
        outcome["region_method"],
        outcome["layout"],
        len(outcome["boxes"]),
        outcome["verify_boxes"],
        time.perf_counter() - started,
    )
    return result


def finish(
    ds: Dataset, pixels: DecodedPixels, detector: TextDetector, outcome: dict[str, Any], started: float
) -> PixelCleaningResult:
    """Write the masked ``pixels`` back into ``ds`` (BurnedInAnnotation NO, overlays and icon removed, lossy
    history kept) and complete the report ``outcome`` in place."""
    source_pi = str(ds.get("PhotometricInterpretation", ""))
    source_ts = str(pixels.transfer_syntax)
    timings = {"clean_s": round(time.perf_counter() - started, 3)}
    tic = time.perf_counter()
    ds.BurnedInAnnotation = "NO"
    remove_overlays(ds)
    ds.pop(0x00880200, None)  # Icon Image Sequence: a thumbnail of the uncleaned pixels
    out_ts = write_back(ds, pixels)
    if out_ts != "1.2.840.10008.1.2.4.50":
        mark_lossy_history(ds, pixels)
    timings["encode_s"] = round(time.perf_counter() - tic, 3)
    outcome.update(
        transfer_syntax=str(out_ts),
        source_transfer_syntax=source_ts,
        photometric=str(ds.PhotometricInterpretation),
        source_photometric=source_pi,
        lossy_input=pixels.lossy_input,
        frames=int(pixels.frames.shape[0]),
        detector=detector.name,
        detector_precision=getattr(detector, "precision", "fp32"),
        **timings,
    )
    return PixelCleaningResult(outcome, functools.partial(to_rgb, pixels.frames, pixels.photometric, ds))


@dataclass
class MaskOutcome:
    """What was masked: everything (``mask``), the OCR part (``text_mask``), the region, and the report."""

    mask: np.ndarray
    text_mask: np.ndarray
    region: ScanRegion
    report: dict[str, Any]
    layout: list[Box] = field(default_factory=list)
    """The text boxes masked (detected, reused and verified), for the device layout."""

    def _replace_state(self, state: str) -> MaskOutcome:
        self.report["layout"] = state
        return self


def clean_frames(
    pixels: DecodedPixels,
    ds: Dataset,
    detector: TextDetector,
    options: PixelOptions,
    layout: list[Box] | None = None,
) -> MaskOutcome:
    """Mask ``pixels.frames`` in place; the report is JSON-safe (no pixel values, no text).

    With a ``layout`` (text boxes of an earlier instance of the same device, ``tasks.pixels.layout``) that still
    holds ink here, detection is skipped: the layout's boxes are masked and verification, on both composites,
    adds any new text. A layout whose boxes are empty here, or after which verification finds more than
    ``LAYOUT_NEW`` new lines, has changed: full detection runs instead (``report["layout"]`` says which).
    """
    frames, pi = pixels.frames, pixels.photometric
    count, h, w = frames.shape[:3]
    gray = gray8(frames, pi, ds)
    static = gray[0] if count == 1 else median_image(gray)
    maximum = None if count == 1 else max_image(gray)
    if layout is not None and not layout_holds(layout, static if maximum is None else maximum):
        layout, state = None, "changed"
    else:
        state = "reused" if layout is not None else "detected"
    region = scan_region(ds, gray) if options.blank_outside_region else ScanRegion("disabled", None)
    mask = np.zeros((h, w), dtype=bool) if region.mask is None else ~region.mask
    margin = options.margin_px * max(1, -(-max(h, w) // options.canvas_size))
    fill = fill_value(frames, pi, ds) if options.fill_value is None else options.fill_value

    if layout is None:
        found = detect_lines(frames, gray, static, pi, ds, detector, options, margin)
    else:
        found = [tuple(b) for b in layout]
    text_mask = bx.paint(np.zeros((h, w), dtype=bool), found)
    mask |= text_mask

    inside = region.mask if region.mask is not None else np.ones((h, w), dtype=bool)
    x0, y0, x1, y1 = bx.pad(bx.bounding_box(inside), VERIFY_CONTEXT, (h, w))  # everything outside is blank
    views = [static] if layout is None or maximum is None else [static, maximum]  # reuse: transient text too
    window = (slice(y0, y1), slice(x0, x1))
    verify_boxes: list[Box] = []
    passes = 0
    while True:
        passes += 1
        hidden = text_mask & inside
        images = [fill_masked(np.where(mask & ~hidden, np.uint8(0), v)[window], hidden[window]) for v in views]
        seen = detect_in(detector, images[:1])  # what is released, boxes in-painted
        if len(images) > 1:  # the maximum of a reused layout: only new, transient text can be left there
            seen += confirmed_candidates(detector, images[1], mask[window])
        thickest = THICK_LIMIT * max(h, w)
        new = [
            bx.pad((b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0), margin, (h, w), RELATIVE_MARGIN)
            for b in seen
            if min(b[2] - b[0], b[3] - b[1]) <= thickest
        ]
        new = [b for b in new if bx.coverage(b, mask) < COVERED]
        if layout is not None and new and len(bx.merge_lines(verify_boxes + new)) > LAYOUT_NEW:
            return clean_frames(pixels, ds, detector, options, None)._replace_state("changed")  # another layout
        if not new:
            break
        if passes >= options.verify_passes:
            raise PixelError(
                f"burned-in text still detected after {passes} verification passes ({len(new)} boxes)",
                reason=QuarantineReason.TEXT_PERSISTS,
            )
        verify_boxes.extend(new)
        extra = bx.paint(np.zeros((h, w), dtype=bool), new)
        mask |= extra
        text_mask |= extra
    paint_frames(frames, mask, np.asarray(fill, dtype=frames.dtype))  # one pass over the pixels, at the end

    report = {
        "region_method": region.method,
        "region_fraction": round(region.kept_fraction, 4),
        "boxes": [list(map(int, b)) for b in found + verify_boxes],
        "verify_boxes": len(verify_boxes),
        "verify_passes": passes,
        "masked_fraction": round(float(mask.mean()), 4),
        "text_masked_fraction": round(float((text_mask & inside).sum() / max(1, inside.sum())), 4),
        "margin_px": int(margin),
        "layout": state,
    }
    return MaskOutcome(mask, text_mask, region, report, layout=[tuple(int(c) for c in b) for b in found + verify_boxes])


LAYOUT_NEW = 2
"""Verification after a reused layout may add this many new text lines (an annotation typed on one cine); more
mean the layout does not fit this instance, and full detection runs."""
LAYOUT_INK = 0.5
"""Share of a layout's boxes that must show ink on this instance for the layout to be used."""


def layout_holds(layout: list[Box], view: np.ndarray) -> bool:
    """Do at least ``LAYOUT_INK`` of the ``layout`` boxes hold text-like contrast in ``view`` (8-bit (H,W))?"""
    if not layout:
        return True
    held = 0
    for x0, y0, x1, y1 in layout:
        patch = view[y0:y1, x0:x1]
        if patch.size and float(np.percentile(patch, 98)) - float(np.median(patch)) > CONTRAST:
            held += 1
    return held >= LAYOUT_INK * len(layout)


CONTRAST = 24
"""Grey levels between a box's background and its brightest ink for the box to show text."""


def detect_lines(
    frames: np.ndarray,
    gray: np.ndarray,
    static: np.ndarray,
    pi: str,
    ds: Dataset,
    detector: TextDetector,
    options: PixelOptions,
    margin: int,
) -> list[Box]:
    """Full detection: the detector on the composites (or every frame), boxes refined to their ink and merged
    into lines."""
    h, w = static.shape
    images = detection_images(frames, gray, static, pi, ds, options)  # before blanking: see text across the edge
    blobs = BLOB_LIMIT * max(h, w)
    detected = [
        (src, bx.pad(b, margin, (h, w), RELATIVE_MARGIN))
        for (src, _), boxes in zip(images, detect_each(detector, [image for _, image in images]), strict=True)
        for b in boxes
        if min(b[2] - b[0], b[3] - b[1]) <= blobs
    ]
    if options.refine_boxes:
        maximum = next((image[..., 0] for src, image in images if src == MAXIMUM), None)
        lines = refined(detected, frames, static, pi, ds, maximum)
    else:
        lines = [bx.Line(box) for _, box in detected]
    return bx.paint_lines(lines)


def paint_frames(frames: np.ndarray, mask: np.ndarray, fill: np.ndarray) -> None:
    """Set ``fill`` into every frame of ``frames`` ((T,H,W) or (T,H,W,C)) where the (H,W) ``mask`` is True.

    Masks are runs of pixels (the outside of a scan region, text boxes): each run is one contiguous copy of a
    prepared fill row into all frames at once, ten times faster than assigning by pixel index on a cine."""
    if not frames.flags.c_contiguous:
        np.copyto(frames, fill, where=mask[None, :, :, None] if frames.ndim == 4 else mask[None])
        return
    channels = frames.size // max(1, frames.shape[0] * mask.size)
    padded = np.concatenate(([False], mask.ravel(), [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[::2], edges[1::2]
    if len(starts) > MAX_RUNS:  # a ragged mask: one indexed assignment beats many small copies
        flat = frames.reshape(frames.shape[0], mask.size, -1)
        flat[:, np.flatnonzero(mask)] = fill.reshape(1, 1, -1) if fill.ndim else fill
        return
    if not len(starts):
        return
    span = int((ends - starts).max())
    row = np.ascontiguousarray(np.broadcast_to(fill, (span, channels))).reshape(-1)
    flat = frames.reshape(frames.shape[0], -1)
    for start, end in zip((starts * channels).tolist(), (ends * channels).tolist(), strict=True):
        flat[:, start:end] = row[: end - start]


MAX_RUNS = 8192
"""Runs of masked pixels up to which ``paint_frames`` copies run by run."""


def confirmed_candidates(detector: TextDetector, image: np.ndarray, masked: np.ndarray) -> list[Box]:
    """Text in ``image`` (8-bit (H,W)) outside ``masked``, found by asking the detector only about the structural
    text candidates there (``tasks.pixels.candidates``), their crops packed into small mosaics: a fraction of a
    full pass on the maximum composite of a reused layout, where only new, transient text can remain."""
    h, w = image.shape[:2]
    asked = [bx.pad(b, CROP_PAD, (h, w)) for b in text_candidates(image) if bx.coverage(b, masked) < COVERED]
    if not asked:
        return []
    crops = [image[b[1] : b[3], b[0] : b[2]] for b in asked]
    return [
        (f[0] + b[0], f[1] + b[1], f[2] + b[0], f[3] + b[1])
        for b, found in zip(asked, detect_crops(detector, crops), strict=True)
        for f in found
    ]


def detect_in(detector: TextDetector, images: list[np.ndarray]) -> list[Box]:
    """All boxes found in ``images``."""
    return [b for boxes in detect_each(detector, images) for b in boxes]


def detect_each(detector: TextDetector, images: list[np.ndarray]) -> list[list[Box]]:
    """The boxes found in each of ``images``, batched to bound memory."""
    found: list[list[Box]] = []
    batch = BATCH.get(getattr(detector, "device", "cpu"), 1)
    for start in range(0, len(images), batch):
        found.extend(detector.detect_batch(images[start : start + batch]))
    return found


MEDIAN, MAXIMUM = -1, -2
"""Sources of detection images that are not a single frame."""


def detection_images(
    frames: np.ndarray, gray: np.ndarray, median: np.ndarray, pi: str, ds: Dataset, options: PixelOptions
) -> list[tuple[int, np.ndarray]]:
    """What the detector looks at, each with its source (a frame index, MEDIAN or MAXIMUM): every frame
    (paranoid mode or a single frame), else the two temporal composites and ``sample_frames`` evenly spaced
    frames in colour."""
    count = frames.shape[0]
    if options.ocr_every_frame or count == 1:
        return [(i, rgb8(frames[i], pi, ds)) for i in range(count)]
    images = [(MEDIAN, median), (MAXIMUM, max_image(gray))]
    images += [(int(i), rgb8(frames[i], pi, ds)) for i in sample_indices(count, options.sample_frames)]
    return [(src, np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img) for src, img in images]


def refined(
    detected: list[tuple[int, Box]],
    frames: np.ndarray,
    static: np.ndarray,
    pi: str,
    ds: Dataset,
    maximum: np.ndarray | None = None,
) -> list[bx.Line]:
    """Each box shrunk to its ink in the image it was found in: the text lines it holds (``tasks.pixels.refine``).
    A box of the maximum composite that boxes of other images already cover is dropped: the text was seen in a
    cleaner view; the others (transient text, or text the other views boxed only in part) are refined on the
    maximum composite itself, where speckle is bright everywhere, so only ink far brighter than it lets a side
    move."""
    seen = bx.paint(np.zeros(static.shape, dtype=bool), [box for src, box in detected if src != MAXIMUM])
    out: list[bx.Line] = []
    for src, box in detected:
        if src == MAXIMUM and bx.coverage(box, seen) >= COVERED:
            continue
        if src == MAXIMUM and maximum is not None:  # MAXIMUM boxes come only with the maximum composite
            views = [maximum[box[1] : box[3], box[0] : box[2]]]
        else:
            views = source_view(src, frames, static, pi, ds, box)
        out.extend(refine(box, views))
    return out


def source_view(
    source: int, frames: np.ndarray, static: np.ndarray, pi: str, ds: Dataset, box: Box
) -> list[np.ndarray]:
    """The pixels inside ``box`` of the image the detector saw them in: a frame, or the median composite
    (``static``, recomputed in colour inside the box for colour data)."""
    x0, y0, x1, y1 = box
    if source >= 0:
        return [rgb8(frames[source, y0:y1, x0:x1], pi, ds)]
    if frames.ndim == 4 or pi == "PALETTE COLOR":
        idx = sample_indices(frames.shape[0], MEDIAN_FRAMES)  # the frames median_image samples
        return [np.median(np.stack([rgb8(frames[i, y0:y1, x0:x1], pi, ds) for i in idx]), axis=0).astype(np.uint8)]
    return [static[y0:y1, x0:x1]]


def fill_masked(image: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """``image`` with ``masked`` pixels inpainted from their surroundings, for verification only.

    Masked pixels carry no information, but black rectangles in speckle look like text to a detector; filling
    them from the surroundings leaves only what was released, so any remnant of text still stands out.
    """
    if not masked.any():
        return image
    return cv2.inpaint(image, masked.astype(np.uint8), 3, cv2.INPAINT_TELEA)


def remove_overlays(ds: Dataset) -> int:
    """Delete every overlay plane element (groups 6000–601E); return how many elements went."""
    groups = range(0x6000, 0x601F, 2)
    tags = [tag for tag in ds.keys() if tag >> 16 in groups]  # noqa: SIM118 (iterating ds parses every element)
    for tag in tags:
        del ds[tag]
    return len(tags)
