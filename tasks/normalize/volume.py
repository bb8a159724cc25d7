"""CT/MR volumes: slices sorted along the slice normal, spacing from positions, CT in Hounsfield units."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydicom import Dataset

from tasks.errors import PixelError, QuarantineReason

log = logging.getLogger(__name__)

INT16_MIN, INT16_MAX = np.iinfo(np.int16).min, np.iinfo(np.int16).max


@dataclass
class Slice:
    """One 2-D plane with its geometry and rescale, as read from a single-frame object or one frame."""

    pixels: np.ndarray  # (H, W), stored values
    position: np.ndarray | None  # ImagePositionPatient (mm)
    orientation: np.ndarray | None  # ImageOrientationPatient (6,)
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) mm
    slice_thickness: float | None
    slope: float = 1.0
    intercept: float = 0.0
    instance_id: str = ""


@dataclass
class Volume:
    """An assembled (Z, Y, X) int16 volume with spacing in mm and the facts of its assembly."""

    data: np.ndarray
    spacing: tuple[float, float, float]
    origin: list[float] | None
    orientation: list[float] | None
    instance_ids: list[str] = field(default_factory=list)
    positions: list[list[float]] | None = None  # ImagePositionPatient of each kept slice, in order (mm)
    spacing_source: str = "positions"
    irregular_spacing: bool = False
    duplicates_dropped: int = 0
    clipped_voxels: int = 0


def _floats(value: object, n: int) -> np.ndarray | None:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return arr if arr.size == n and np.all(np.isfinite(arr)) else None


def _float(value: object, default: float | None = None) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


def slice_from_dataset(ds: Dataset, pixels: np.ndarray, instance_id: str) -> Slice:
    """A :class:`Slice` from a single-frame CT/MR object and its decoded pixels."""
    spacing = _floats(ds.get("PixelSpacing"), 2)
    return Slice(
        pixels=pixels,
        position=_floats(ds.get("ImagePositionPatient"), 3),
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing is not None else None,
        slice_thickness=_float(ds.get("SliceThickness")),
        slope=_float(ds.get("RescaleSlope"), 1.0) or 1.0,
        intercept=_float(ds.get("RescaleIntercept"), 0.0) or 0.0,
        instance_id=instance_id,
    )


def _first_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    seq = ds.get(keyword) if ds is not None else None
    return seq[0] if seq else None


def slices_from_enhanced(ds: Dataset, frames: np.ndarray, instance_id: str) -> list[Slice]:
    """Slices of an enhanced multi-frame object (per-frame and shared functional groups)."""
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    slices = []
    for i, frame in enumerate(frames):
        groups = per_frame[i] if i < len(per_frame) else None

        def item(keyword: str, groups: Dataset | None = groups) -> Dataset | None:
            return _first_item(groups, keyword) or _first_item(shared, keyword)

        position = item("PlanePositionSequence")
        orientation = item("PlaneOrientationSequence")
        measures = item("PixelMeasuresSequence")
        transform = item("PixelValueTransformationSequence")
        spacing = _floats(measures.get("PixelSpacing"), 2) if measures is not None else None
        slices.append(
            Slice(
                pixels=frame,
                position=_floats(position.get("ImagePositionPatient"), 3) if position is not None else None,
                orientation=_floats(orientation.get("ImageOrientationPatient"), 6) if orientation is not None else None,
                pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing is not None else None,
                slice_thickness=_float(measures.get("SliceThickness")) if measures is not None else None,
                slope=_rescale(transform, ds, "RescaleSlope", 1.0),
                intercept=_rescale(transform, ds, "RescaleIntercept", 0.0),
                instance_id=instance_id,
            )
        )
    return slices


def _rescale(transform: Dataset | None, ds: Dataset, keyword: str, default: float) -> float:
    value = _float(transform.get(keyword)) if transform is not None else None
    if value is None:
        value = _float(ds.get(keyword))
    return default if value is None else value


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """Unit normal of a plane from ImageOrientationPatient (row cosines × column cosines)."""
    normal = np.cross(orientation[:3], orientation[3:])
    norm = np.linalg.norm(normal)
    return normal / norm if norm > 0 else np.asarray([0.0, 0.0, 1.0])


def assemble_volume(slices: Sequence[Slice], *, hounsfield: bool) -> Volume:
    """Sort ``slices`` along the slice normal, take z spacing from positions, apply rescale for CT.

    Raises PixelError (PIXELS_INCONSISTENT) when slices differ in size or orientation.
    """
    if not slices:
        raise PixelError("no slices to assemble", reason=QuarantineReason.PIXELS_INCONSISTENT, step="normalize")
    shapes = {s.pixels.shape for s in slices}
    if len(shapes) != 1:
        raise PixelError(
            f"slices of one series differ in size {sorted(shapes)}; (0028,0010)/(0028,0011) must match",
            reason=QuarantineReason.PIXELS_INCONSISTENT,
            step="normalize",
        )
    orientation = slices[0].orientation
    with_geometry = orientation is not None and all(s.position is not None for s in slices)
    if with_geometry and any(
        s.orientation is None or not np.allclose(s.orientation, orientation, atol=1e-3) for s in slices
    ):
        raise PixelError(
            "slices of one series differ in (0020,0037) ImageOrientationPatient",
            reason=QuarantineReason.PIXELS_INCONSISTENT,
            step="normalize",
        )
    ordered, duplicates, spacing_z, source, irregular = _order(slices, with_geometry)
    stack = np.stack([s.pixels for s in ordered]).astype(np.float64)
    if hounsfield:
        slopes = np.asarray([s.slope for s in ordered])[:, None, None]
        intercepts = np.asarray([s.intercept for s in ordered])[:, None, None]
        stack = stack * slopes + intercepts
    clipped = int(np.count_nonzero((stack < INT16_MIN) | (stack > INT16_MAX)))
    if clipped:
        log.warning("volume: %d voxels outside int16 clipped", clipped)
    data = np.clip(np.rint(stack), INT16_MIN, INT16_MAX).astype(np.int16)
    row_col = ordered[0].pixel_spacing or (1.0, 1.0)
    return Volume(
        data=data,
        spacing=(spacing_z, row_col[0], row_col[1]),
        origin=[float(v) for v in ordered[0].position] if with_geometry else None,
        orientation=[float(v) for v in orientation] if orientation is not None else None,
        instance_ids=[s.instance_id for s in ordered],
        positions=[[float(v) for v in s.position] for s in ordered] if with_geometry else None,  # type: ignore[union-attr]
        spacing_source=source,
        irregular_spacing=irregular,
        duplicates_dropped=duplicates,
        clipped_voxels=clipped,
    )


def _order(slices: Sequence[Slice], with_geometry: bool) -> tuple[list[Slice], int, float, str, bool]:
    thickness = next((s.slice_thickness for s in slices if s.slice_thickness), None) or 1.0
    if not with_geometry:
        return list(slices), 0, float(thickness), "SliceThickness", False
    normal = slice_normal(slices[0].orientation)  # type: ignore[arg-type]
    distance = np.asarray([float(np.dot(s.position, normal)) for s in slices])  # type: ignore[arg-type]
    order = np.argsort(distance, kind="stable")
    kept: list[int] = []
    for idx in order:
        if kept and abs(distance[idx] - distance[kept[-1]]) < 1e-4:
            continue  # same plane twice (e.g. a repeated acquisition): keep the first
        kept.append(int(idx))
    gaps = np.diff(distance[kept])
    if gaps.size == 0:
        return [slices[i] for i in kept], len(slices) - len(kept), float(thickness), "SliceThickness", False
    spacing = float(np.median(gaps))
    irregular = bool(np.max(np.abs(gaps - spacing)) > 0.1 * spacing)
    return [slices[i] for i in kept], len(slices) - len(kept), spacing, "positions", irregular


def slices_from_volume(data: np.ndarray, attrs: dict) -> list[Slice]:
    """The slices of a stored volume (``data`` (Z,Y,X) as stored, ``attrs`` of its node), to assemble it again
    with slices that arrived later. Stored values are final (CT already in HU): slope 1, intercept 0.

    Raises PixelError (NORMALISE_FAILED) when the stored volume has no slice geometry to sort new slices into.
    """
    positions = attrs.get("slice_positions_mm")
    orientation = attrs.get("orientation")
    ids = list(attrs.get("slice_instance_ids") or [])
    if positions is None or orientation is None or len(positions) != data.shape[0] or len(ids) != data.shape[0]:
        raise PixelError(
            "the stored volume of this series has no per-slice geometry, so slices that arrive later cannot be "
            "placed in it; re-ingest the whole series into a new dataset",
            reason=QuarantineReason.NORMALISE_FAILED,
            step="normalize",
        )
    spacing = attrs.get("spacing") or {}
    pixel_spacing = (float(spacing.get("y_mm", 1.0)), float(spacing.get("x_mm", 1.0)))
    return [
        Slice(
            pixels=data[k],
            position=np.asarray(positions[k], dtype=np.float64),
            orientation=np.asarray(orientation, dtype=np.float64),
            pixel_spacing=pixel_spacing,
            slice_thickness=None,
            instance_id=str(ids[k]),
        )
        for k in range(data.shape[0])
    ]
