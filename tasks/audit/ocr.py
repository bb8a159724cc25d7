"""Read burned-in text left in stored frames: detect boxes, recognise words, search them for the patterns.

Boxes come from the pixel cleaner's detector (``tasks.pixels.detector``) when it is available, else from
easyocr's own; words from easyocr's recogniser with the offline English weights. Masked areas are blank, so
only text outside them can be found. OCR confuses spaces and punctuation, so recognised words are compared
with the patterns on letters and digits only.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tasks.audit.search import Matcher

log = logging.getLogger(__name__)

MIN_SIDE = 64
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def compact(text: str) -> str:
    return _NON_ALNUM.sub("", text.casefold())


@functools.cache
def _reader():
    import easyocr
    import easyocr_en_models

    return easyocr.Reader(
        ["en"],
        gpu=False,
        model_storage_directory=easyocr_en_models.model_dir(),
        download_enabled=False,
        verbose=False,
    )


@functools.cache
def _pixels_detector():
    try:
        from tasks.pixels.detector import get_detector

        return get_detector("easyocr", "cpu")
    except Exception:  # the pixel cleaner's detector is optional here
        return None


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """Scale any 2-D (or H,W,3) frame to uint8 for OCR."""
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    f = frame.astype(np.float32)
    lo, hi = np.percentile(f, [1, 99]) if f.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((f - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def sample_frames(array, frames: int) -> Iterator[np.ndarray]:
    """Up to ``frames`` evenly spaced 2-D (or RGB) frames of a stored array."""
    shape = array.shape
    if len(shape) == 2:
        yield np.asarray(array[:])
        return
    if len(shape) == 3 and shape[-1] in (3, 4) and shape[0] > 4:
        yield np.asarray(array[:])[..., :3]
        return
    if len(shape) == 4 and shape[-1] == 1:
        array = np.asarray(array)[..., 0]
    count = shape[0]
    for index in sorted(set(np.linspace(0, count - 1, num=min(frames, count)).round().astype(int).tolist())):
        frame = np.asarray(array[index])
        yield frame[..., :3] if frame.ndim == 3 else frame


def read_words(frame: np.ndarray) -> tuple[int, list[str]]:
    """(number of text boxes, recognised words) in one frame."""
    image = to_uint8(frame)
    reader = _reader()
    detector = _pixels_detector()
    if detector is not None:
        boxes = detector.detect(image)
        if not boxes:
            return 0, []
        horizontal = [[x0, x1, y0, y1] for x0, y0, x1, y1 in boxes]
        gray = image if image.ndim == 2 else np.asarray(image.mean(axis=2), dtype=np.uint8)
        results = reader.recognize(gray, horizontal_list=horizontal, free_list=[], detail=1)
        return len(boxes), [r[1] for r in results]
    results = reader.readtext(image, detail=1)
    return len(results), [r[1] for r in results]


def iter_arrays(store: Path) -> Iterator[tuple[str, object]]:
    """(key, array) for every array in a zarr store with frames large enough to hold readable text."""
    import zarr

    root = zarr.open_group(str(store), mode="r")
    for key, array in _walk(root):
        shape = array.shape
        if len(shape) < 2:
            continue
        height, width = shape[-3:-1] if len(shape) >= 3 and shape[-1] in (3, 4) else shape[-2:]
        if min(height, width) >= MIN_SIDE:
            yield key, array


def _walk(group, prefix: str = "") -> Iterator[tuple[str, object]]:
    for name, member in group.members():
        key = f"{prefix}{name}"
        if hasattr(member, "shape"):
            yield key, member
        else:
            yield from _walk(member, key + "/")


def ocr_frames(array, matcher: Matcher, frames: int) -> tuple[int, int, Counter[str]]:
    """(frames read, text boxes seen, pattern hits in the recognised words) for one array."""
    boxes = 0
    hits: Counter[str] = Counter()
    n = 0
    for frame in sample_frames(array, frames):
        found, words = read_words(frame)
        boxes += found
        n += 1
        if words:
            hits += matcher.find(" ".join(compact(w) for w in words), folded=True)
            hits += matcher.find(compact(" ".join(words)), folded=True)
    return n, boxes, hits


def ocr_store(store: Path, matcher: Matcher, frames: int = 3) -> Iterator[tuple[str, int, int, Counter[str]]]:
    """For each array of a zarr store: (key, frames read, text boxes seen, hits)."""
    for key, array in iter_arrays(store):
        yield key, *ocr_frames(array, matcher, frames)


def ocr_dicom(path: Path, matcher: Matcher, frames: int = 3, max_pixel_bytes: int = 1 << 30):
    """(frames read, text boxes seen, hits) for the pixel data of one DICOM file; None without pixels."""
    import pydicom

    ds = pydicom.dcmread(path, force=True)
    if "PixelData" not in ds:
        return None
    declared = int(ds.get("Rows", 0)) * int(ds.get("Columns", 0)) * int(ds.get("NumberOfFrames", 1) or 1)
    if declared * int(ds.get("SamplesPerPixel", 1)) * 2 > max_pixel_bytes:
        return None
    array = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) == 1:
        array = array[None]  # frames first, like the stored arrays
    if array.ndim < 3 or min(array.shape[1:3]) < MIN_SIDE:
        return None
    return ocr_frames(array, matcher, frames)
