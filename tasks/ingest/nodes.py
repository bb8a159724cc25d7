"""What is stored for one object: arrays, group attributes (OME + medflow) and its manifest row.

Pure functions of a *de-identified* dataset and its pixels; ``process.py`` does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom import Dataset

from tasks.normalize import intensity
from tasks.normalize.facts import scan_facts
from tasks.normalize.pixels import pixel_stats
from tasks.normalize.timing import frame_timing
from tasks.normalize.view import make_view, resample_indices
from tasks.normalize.volume import Volume
from tasks.store.attrs import json_safe
from tasks.store.ome import ome_attrs
from tasks.store.zarr_store import ArraySpec, video_chunks, volume_chunks

NATIVE = "0"
VIEW = "view"
VIDEO_DIMS = ("t", "y", "x")
COLOUR_VIDEO_DIMS = ("t", "y", "x", "c")  # as acquired; OME-Zarr 0.5 cannot describe channel-last
VOLUME_DIMS = ("z", "y", "x")
#: Said in the attributes of a node whose native array is not an OME image, so a reader knows why.
CHANNEL_LAST_NOTE = (
    "native array {path!r} is colour stored channel-last (t,y,x,c) as acquired; OME-Zarr 0.5 requires channels "
    "before space, so it is not an OME image"
)


@dataclass(frozen=True)
class Ids:
    """Pseudonymous identifiers of a stored object (never the source values)."""

    patient_id: str
    study_id: str
    series_id: str
    instance_id: str


@dataclass
class Node:
    """A Zarr group to publish under ``key``."""

    key: str
    arrays: dict[str, ArraySpec]
    attrs: dict[str, Any]
    row: dict[str, Any]


def _iso_date(value: object) -> str | None:
    text = str(value or "").strip()
    if len(text) >= 8 and text[:8].isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:8]}"
    return None


def _age_years(value: object) -> float | None:
    text = str(value or "").strip().upper()
    if len(text) != 4 or not text[:3].isdigit():
        return None
    per_year = {"Y": 1, "M": 12, "W": 52.1775, "D": 365.25}.get(text[3])
    return round(int(text[:3]) / per_year, 3) if per_year else None


def ultrasound_spacing(ds: Dataset) -> tuple[float | None, float | None]:
    """(row, column) spacing in mm from PixelSpacing, else the first ultrasound region in cm (units code 3)."""
    spacing = ds.get("PixelSpacing")
    if spacing is not None and len(spacing) == 2:
        return float(spacing[0]), float(spacing[1])
    for region in ds.get("SequenceOfUltrasoundRegions") or []:
        if region.get("PhysicalUnitsXDirection") == 3 and region.get("PhysicalUnitsYDirection") == 3:
            dx, dy = region.get("PhysicalDeltaX"), region.get("PhysicalDeltaY")
            if dx and dy:
                return abs(float(dy)) * 10.0, abs(float(dx)) * 10.0
    return None, None


def base_row(ds: Dataset, ids: Ids, kind: str, key: str) -> dict[str, Any]:
    """Manifest columns shared by all kinds: ids, modality, shifted date, retained characteristics, facts."""
    return {
        "instance_id": ids.instance_id,
        "patient_id": ids.patient_id,
        "study_id": ids.study_id,
        "series_id": ids.series_id,
        "modality": str(ds.get("Modality", "") or ""),
        "kind": kind,
        "zarr_key": f"{key}/{NATIVE}",
        "view_key": None,
        "study_date": _iso_date(ds.get("StudyDate") or ds.get("SeriesDate") or ds.get("ContentDate")),
        "sex": str(ds.get("PatientSex", "") or "") or None,
        "age_years": _age_years(ds.get("PatientAge")),
        "patient_identity_removed": str(ds.get("PatientIdentityRemoved", "") or ""),
        **scan_facts(ds),
    }


def video_ome(
    key: str,
    shape: tuple[int, ...],
    frame_ms: float | None,
    spacing_y: float | None,
    spacing_x: float | None,
    view_fps: float | None,
    view_size: int,
    has_view: bool,
) -> dict | None:
    """OME-Zarr 0.5 metadata for a video node. Grayscale: the native (t,y,x) array. Colour is stored as acquired,
    channel last (T,H,W,3), which OME 0.5 cannot describe (channels come before space), so the image viewers open
    is the grayscale training view (t,y,x) with its own frame time and spacing; None when there is neither."""
    if len(shape) == 3:
        return ome_attrs(key, list(VIDEO_DIMS), [frame_ms, spacing_y, spacing_x], path=NATIVE)
    if not has_view:
        return None
    h, w = shape[1], shape[2]
    return ome_attrs(
        key,
        list(VIDEO_DIMS),
        [
            1000.0 / view_fps if view_fps else frame_ms,
            spacing_y * h / view_size if spacing_y else None,
            spacing_x * w / view_size if spacing_x else None,
        ],
        path=VIEW,
    )


def _common_attrs(row: dict[str, Any], cleaning: dict[str, Any]) -> dict[str, Any]:
    keys = ("modality", "kind", "patient_id", "study_id", "series_id", "instance_id", "study_date", "sex")
    return {**{k: row[k] for k in keys}, "cleaning": cleaning}


def video_node(ds: Dataset, frames: np.ndarray, ids: Ids, *, target_fps: float, view_size: int, cleaning: dict) -> Node:
    """A cine or single frame: native (T,H,W[,C]) array, plus a training view when it has >1 frame."""
    key = ids.instance_id
    n = frames.shape[0]
    kind = "video" if n > 1 else "image"
    timing = frame_timing(ds, n)
    spacing_y, spacing_x = ultrasound_spacing(ds)
    row = base_row(ds, ids, kind, key)
    frame_ms = float(np.median(np.diff(timing.times_ms))) if timing.fps and n > 1 else None
    row.update(
        frames=n,
        height=frames.shape[1],
        width=frames.shape[2],
        channels=frames.shape[3] if frames.ndim == 4 else 1,
        dtype=str(frames.dtype),
        source_fps=timing.fps,
        timing_source=timing.source,
        spacing_t=frame_ms,
        spacing_z=None,
        spacing_y=spacing_y,
        spacing_x=spacing_x,
        **pixel_stats(frames),
    )
    dims = VIDEO_DIMS if frames.ndim == 3 else COLOUR_VIDEO_DIMS
    arrays = {NATIVE: ArraySpec(frames, video_chunks(frames.shape), dimension_names=dims)}
    row.update(view_fps=None, view_frames=None, view_mean=None, view_std=None)
    if kind == "video":
        if timing.fps:
            indices, view_fps = resample_indices(timing.times_ms, target_fps), target_fps
        else:  # unknown rate: keep every frame; QC flags the missing fps
            indices, view_fps = np.arange(n), None
        view = make_view(frames, indices, view_size)
        arrays[VIEW] = ArraySpec(
            view,
            video_chunks(view.shape),
            {"fps": view_fps, "source_frames": indices.tolist(), "size": view_size, "grayscale": True},
            dimension_names=VIDEO_DIMS,
        )
        row.update(
            view_key=f"{key}/{VIEW}",
            view_fps=view_fps,
            view_frames=int(view.shape[0]),
            view_mean=float(view.mean()),
            view_std=float(view.std()),
        )
    ome = video_ome(key, frames.shape, frame_ms, spacing_y, spacing_x, row["view_fps"], view_size, VIEW in arrays)
    ome_fields: dict[str, Any] = {"ome": ome} if ome else {}
    if frames.ndim == 4:
        ome_fields["ome_note"] = CHANNEL_LAST_NOTE.format(path=NATIVE) + (
            f"; the OME image of this node is its grayscale training view {VIEW!r}" if ome else ""
        )
    attrs = {
        **ome_fields,
        **_common_attrs(row, cleaning),
        "frame_times_ms": timing.times_ms.round(3).tolist(),
        "timing_source": timing.source,
        "source_fps": timing.fps,
        "view_fps": row["view_fps"],
        "spacing": {"t_ms": frame_ms, "y_mm": spacing_y, "x_mm": spacing_x},
        "photometric": "RGB" if frames.ndim == 4 else str(ds.get("PhotometricInterpretation", "")),
        # dataset-level mean/std of the views is pooled at finalisation (root attrs ``intensity``)
        "intensity": {"method": "dataset-mean-std", "scope": "store.zarr attrs intensity.video"},
    }
    row["n_source_instances"] = 1
    return Node(key, arrays, json_safe(attrs), json_safe(row))


def volume_node(
    ds: Dataset, volume: Volume, ids: Ids, *, key: str, cleaning: dict, source_instance_ids: list[str] | None = None
) -> Node:
    """A CT/MR volume: int16 (Z,Y,X), spacing from positions, CT window or MR z-score parameters.

    ``source_instance_ids``: every (pseudonymous) instance assembled into it, duplicates of a plane included
    (default: the kept slices); a later run skips exactly these and extends the volume with any other slice."""
    modality = str(ds.get("Modality", "") or "")
    params = intensity.ct_window(ds) if modality == "CT" else intensity.zscore(volume.data)
    row = base_row(ds, ids, "volume", key)
    data = volume.data
    row.update(
        frames=int(data.shape[0]),
        height=int(data.shape[1]),
        width=int(data.shape[2]),
        channels=1,
        dtype=str(data.dtype),
        source_fps=None,
        timing_source=None,
        spacing_t=None,
        spacing_z=volume.spacing[0],
        spacing_y=volume.spacing[1],
        spacing_x=volume.spacing[2],
        view_fps=None,
        view_frames=None,
        view_mean=None,
        view_std=None,
        n_source_instances=len(source_instance_ids or volume.instance_ids),
        **pixel_stats(data),
    )
    native_attrs = {"intensity": params, "units": "HU" if modality == "CT" else "stored value"}
    attrs = {
        "ome": ome_attrs(key, list(VOLUME_DIMS), list(volume.spacing), path=NATIVE),
        **_common_attrs(row, cleaning),
        "spacing": {"z_mm": volume.spacing[0], "y_mm": volume.spacing[1], "x_mm": volume.spacing[2]},
        "spacing_source": volume.spacing_source,
        "irregular_spacing": volume.irregular_spacing,
        "duplicates_dropped": volume.duplicates_dropped,
        "clipped_voxels": volume.clipped_voxels,
        "origin_mm": volume.origin,
        "orientation": volume.orientation,
        "slice_instance_ids": volume.instance_ids,
        "slice_positions_mm": volume.positions,
        "source_instance_ids": sorted(set(source_instance_ids or volume.instance_ids)),
        "intensity": params,
    }
    arrays = {NATIVE: ArraySpec(data, volume_chunks(data.shape), native_attrs, dimension_names=VOLUME_DIMS)}
    return Node(key, arrays, json_safe(attrs), json_safe(row))
