"""Labelled synthetic ultrasound with burned-in PHI-like text, for tests and the recall benchmark.

Each item is an echo-like cine or still: a fan-shaped sector of speckle with a moving bright wall, and PHI-like
strings (names, IDs, dates, times, institutions) drawn with random OpenCV Hershey fonts, sizes, thicknesses and
colours at random positions inside and outside the sector. The label of each string is the tight bounding box
of its drawn pixels. Everything is generated from a seed; nothing is real patient data.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
)
COLOURS = ((255, 255, 255), (200, 200, 200), (255, 255, 0), (0, 255, 0), (0, 255, 255), (255, 160, 0))
FIRST = ("JANE", "JOHN", "MARIA", "WEI", "AHMED", "OLGA", "PEDRO", "AIKO")
LAST = ("DOE", "SMITH", "GARCIA", "NGUYEN", "MUELLER", "KOWALSKI", "OKAFOR", "TANAKA")
SITES = ("ST MARY HOSP", "CITY HEART CTR", "NORTH CLINIC", "UNIV MED CTR")


@dataclass
class SyntheticItem:
    """Frames (T,H,W) uint8 or (T,H,W,3) RGB, the sector mask, and one labelled box per drawn string."""

    frames: np.ndarray
    sector: np.ndarray
    boxes: list[tuple[int, int, int, int]]
    inside: list[bool]

    def dataset(self, *, with_regions: bool) -> Dataset:
        """An uncompressed US (multi-frame) Image Storage object holding the frames."""
        return us_dataset(self.frames, self.sector if with_regions else None)


def phi_string(rng: np.random.Generator) -> str:
    """One PHI-like string: a name, an MRN, a date, a time or an institution."""
    kind = rng.integers(6)
    if kind == 0:
        return f"{rng.choice(LAST)}^{rng.choice(FIRST)}"
    if kind == 1:
        return f"MRN {rng.integers(10**6, 10**8)}"
    if kind == 2:
        return f"{rng.integers(1950, 2025)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
    if kind == 3:
        return f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}"
    if kind == 4:
        return str(rng.choice(SITES))
    return f"ID {rng.integers(100, 999)}-{rng.integers(1000, 9999)}"


def sector_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A fan (apex near the top centre) covering most of the frame."""
    mask = np.zeros((h, w), np.uint8)
    apex = (w // 2 + int(rng.integers(-w // 20, w // 20 + 1)), int(h * rng.uniform(0.08, 0.14)))
    radius = int(h * rng.uniform(0.72, 0.82))
    half = float(rng.uniform(32, 42))
    cv2.ellipse(mask, apex, (radius, radius), 90, -half, half, 1, thickness=-1)
    return mask.astype(bool)


def make_item(
    rng: np.random.Generator,
    *,
    frames: int = 16,
    shape: tuple[int, int] = (480, 640),
    colour: bool = True,
    texts: int = 6,
    inside_share: float = 0.35,
) -> SyntheticItem:
    """One labelled cine (``frames`` > 1) or still, with ``texts`` strings, about ``inside_share`` in the sector."""
    h, w = shape
    sector = sector_mask(h, w, rng)
    cine = _speckle_cine(rng, frames, sector)
    if colour:
        cine = np.repeat(cine[..., None], 3, axis=3)
    taken = np.zeros((h, w), bool)
    boxes: list[tuple[int, int, int, int]] = []
    inside: list[bool] = []
    for _ in range(texts * 20):
        if len(boxes) == texts:
            break
        want_inside = rng.random() < inside_share
        drawn = _draw_text(rng, (h, w), colour)
        if drawn is None:
            continue
        layer, box = drawn
        x0, y0, x1, y1 = box
        pad = 6
        region = (slice(max(0, y0 - pad), y1 + pad), slice(max(0, x0 - pad), x1 + pad))
        is_inside = bool(sector[y0:y1, x0:x1].mean() > 0.95)
        is_outside = not sector[y0:y1, x0:x1].any()
        if taken[region].any() or (want_inside and not is_inside) or (not want_inside and not is_outside):
            continue
        taken[region] = True
        ink = layer[..., 3] > 0 if layer.ndim == 3 else layer > 0
        cine[:, ink] = layer[ink][..., :3] if colour else layer[ink]
        boxes.append(box)
        inside.append(is_inside)
    return SyntheticItem(cine, sector, boxes, inside)


def _speckle_cine(rng: np.random.Generator, frames: int, sector: np.ndarray) -> np.ndarray:
    h, w = sector.shape
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h * 0.5, w * 0.5
    out = np.zeros((frames, h, w), np.uint8)
    for t in range(frames):
        speckle = rng.rayleigh(28.0, (h, w))
        r = min(h, w) * (0.22 + 0.04 * np.sin(2 * np.pi * t / max(frames, 2)))
        ring = np.abs(np.hypot((yy - cy) / 1.3, xx - cx) - r) < 6
        img = np.clip(speckle + ring * 110, 0, 255)
        out[t] = np.where(sector, img, 0).astype(np.uint8)
    return out


def _draw_text(rng: np.random.Generator, shape: tuple[int, int], colour: bool):
    h, w = shape
    text = phi_string(rng)
    font = int(rng.choice(FONTS))
    scale = float(rng.uniform(0.45, 1.0))
    if font in (cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_COMPLEX_SMALL):
        scale *= 1.4
    thickness = int(rng.integers(1, 3))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    if tw >= w - 4 or th + base >= h - 4:
        return None
    org = (int(rng.integers(2, w - tw - 2)), int(rng.integers(th + 2, h - base - 2)))
    if colour:
        layer = np.zeros((h, w, 4), np.uint8)
        c = COLOURS[int(rng.integers(len(COLOURS)))]
        cv2.putText(layer, text, org, font, scale, (*c, 255), thickness, cv2.LINE_AA)
        ink = layer[..., 3] > 0
    else:
        layer = np.zeros((h, w), np.uint8)
        cv2.putText(layer, text, org, font, scale, int(rng.integers(200, 256)), thickness, cv2.LINE_AA)
        ink = layer > 0
    ys, xs = np.nonzero(ink)
    return layer, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def us_dataset(frames: np.ndarray, region: np.ndarray | None = None) -> Dataset:
    """Uncompressed US Image / US Multi-frame Image Storage object for ``frames`` (T,H,W[,3]) uint8."""
    ds = Dataset()
    multi = frames.shape[0] > 1
    sop_class = "1.2.840.10008.5.1.4.1.1.3.1" if multi else "1.2.840.10008.5.1.4.1.1.6.1"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "US"
    ds.PatientName = "SYNTHETIC^PATIENT"
    ds.PatientID = "SYN-0001"
    ds.BurnedInAnnotation = "YES"
    ds.set_pixel_data(frames, "RGB" if frames.ndim == 4 else "MONOCHROME2", 8, generate_instance_uid=False)
    if multi:
        ds.FrameTime = 20.0
    if region is not None:
        ys, xs = np.nonzero(region)
        item = Dataset()
        item.RegionSpatialFormat, item.RegionDataType, item.RegionFlags = 1, 1, 0
        item.RegionLocationMinX0, item.RegionLocationMinY0 = int(xs.min()), int(ys.min())
        item.RegionLocationMaxX1, item.RegionLocationMaxY1 = int(xs.max()), int(ys.max())
        ds.SequenceOfUltrasoundRegions = [item]
    return ds


def burn_in(ds: Dataset, text: str, org: tuple[int, int], scale: float = 0.6, thickness: int = 1) -> np.ndarray:
    """Paint ``text`` into the pixels of ``ds`` (every frame, any photometric interpretation), as a scanner or a
    capture station does: in the brightest displayed value (white ink); the dataset is stored uncompressed.
    Returns the (H,W) mask of the ink pixels, the truth a test checks the written output against."""
    from pydicom.uid import ExplicitVRLittleEndian

    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames") or 1)
    stack = arr[None] if frames == 1 else arr
    h, w = stack.shape[1:3]
    layer = np.zeros((h, w), np.uint8)
    cv2.putText(layer, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_8)
    ink = layer > 0
    photometric = str(ds.PhotometricInterpretation)
    if stack.ndim == 4:
        value = np.array([255, 255, 255], stack.dtype)
    else:
        value = np.array(stack.min() if photometric == "MONOCHROME1" else stack.max(), stack.dtype)
    stack = np.array(stack)
    stack[:, ink] = value
    ds.PixelData = (stack[0] if frames == 1 else stack).tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if "YBR" in photometric:
        ds.PhotometricInterpretation = "RGB"
    ds.pop("LossyImageCompression", None)
    return ink
