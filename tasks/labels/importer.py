"""``import_mdai``: an MD.ai export → a labels table for ``medflow train`` and OME-Zarr label images (plain Python).

Every UID of the export is looked up as it is (an export of the de-identified images) and, failing that, through the
dataset's keyed pseudonyms (an export annotated on the originals inside the hospital): the same HMAC the images got,
so no lookup table exists. Rows that match nothing are refused and counted by reason; no value is ever printed.

Outputs under ``DATASET/labels/``: ``mdai-labels.csv`` (one row per patient, one column per label group: the majority
label; with its de-identification record, so ``medflow train --labels … --task classification --target-col GROUP``
reads it), ``mdai-annotations.parquet`` (every accepted row: pseudonymous ids, group, label, scope, annotator
ordinal) and ``mdai-regions.parquet`` (boxes and masks: node, label value, stored frame, view frame, pixels). Boxes and
masks are drawn into ``<node>/labels/mdai/0`` on the grid of the node's OME image.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

from tasks.atomic import atomic_write_bytes
from tasks.deid.pseudonyms import Pseudonymizer
from tasks.errors import ConfigError
from tasks.labels.mdai import Annotation, LabelDef, MdaiExport, Scope, parse_export
from tasks.labels.raster import draw
from tasks.store.labels import image_grid, write_label_image
from tasks.store.zarr_store import node_attrs, store_path

log = logging.getLogger(__name__)

LABELS_DIR = "labels"
LABEL_IMAGE = "mdai"


@dataclass
class ImportSummary:
    """Counts only (no UID, no label text from the export beyond what the dataset keeps)."""

    rows: int = 0
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    matched_by: dict[str, int] = field(default_factory=dict)  # "deidentified" | "pseudonym"
    patients: int = 0
    label_groups: int = 0
    regions: int = 0
    label_images: int = 0

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class DatasetIds:
    """The dataset's pseudonymous ids, and the volume slice each assembled instance became."""

    def __init__(self, dataset: Path):
        manifest = pd.read_parquet(Path(dataset) / "manifest.parquet")
        self.patient_of = {level: dict(zip(manifest[col].astype(str), manifest["patient_id"].astype(str), strict=True))
                           for level, col in (("study", "study_id"), ("series", "series_id"),
                                              ("instance", "instance_id"))}  # fmt: skip
        self.rows = {str(r.instance_id): r for r in manifest.itertuples(index=False)}
        self.slices: dict[str, tuple[str, int]] = {}
        for row in manifest[manifest["kind"] == "volume"].itertuples(index=False):
            key = str(row.zarr_key).rsplit("/", 1)[0]
            for z, sop in enumerate(node_attrs(dataset, key).get("slice_instance_ids") or []):
                self.slices[str(sop)] = (key, z)
                self.patient_of["instance"].setdefault(str(sop), str(row.patient_id))


def _resolve(uid: str | None, known: dict[str, str], pseudo: Pseudonymizer | None) -> tuple[str | None, str]:
    if not uid:
        return None, ""
    if uid in known:
        return uid, "deidentified"
    if pseudo is not None and (mapped := pseudo.uid(uid)) in known:
        return mapped, "pseudonym"
    return None, ""


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "label"


def import_mdai(export: Path, dataset: Path, pseudo: Pseudonymizer | None) -> ImportSummary:
    """Import ``export`` into ``dataset`` (see the module docstring); ConfigError when nothing matches."""
    try:
        parsed = parse_export(json.loads(Path(export).read_text()))
    except (OSError, ValueError) as error:
        raise ConfigError("cannot read the MD.ai export as JSON") from error
    ids = DatasetIds(dataset)
    summary = ImportSummary(rows=len(parsed.annotations))
    annotators: dict[str, str] = {}
    accepted: list[dict[str, Any]] = []
    regions: list[tuple[Annotation, LabelDef, str, str, int]] = []  # (row, label, sop, patient, accepted index)
    for row in parsed.annotations:
        label = parsed.labels.get(row.label_id)
        if label is None:
            summary.refuse("unknown-label")
            continue
        level = "instance" if label.is_region or label.scope is Scope.IMAGE else label.scope.value
        uid = {"instance": row.sop_uid, "series": row.series_uid, "exam": row.study_uid}[level]
        known = ids.patient_of["study" if level == "exam" else level]
        matched, how = _resolve(uid, known, pseudo)
        if matched is None:
            summary.refuse("no-match")
            continue
        summary.matched_by[how] = summary.matched_by.get(how, 0) + 1
        patient = known[matched]
        annotator = annotators.setdefault(row.annotator or "", f"annotator-{len(annotators) + 1}")
        if label.is_region:
            regions.append((row, label, matched, patient, len(accepted)))
        accepted.append({"patient_id": patient, "level": level, "uid": matched, "label_group": label.group,
                         "label": label.name, "scope": label.scope.value, "mode": label.mode or "global",
                         "frame": row.frame, "annotator": annotator})  # fmt: skip
    region_rows = _draw_regions(dataset, ids, parsed, regions, summary)
    dropped = {r["index"] for r in region_rows if r.get("refused")}
    accepted = [a for i, a in enumerate(accepted) if i not in dropped]
    summary.accepted = len(accepted)
    accepted_frame = pd.DataFrame(accepted)
    if accepted_frame.empty:
        raise ConfigError(f"no row of the MD.ai export matches the dataset (refused: {summary.refused}); check the "
                          "key (original UIDs map through the same key as the images) and the dataset")  # fmt: skip
    out = Path(dataset) / LABELS_DIR
    out.mkdir(exist_ok=True)
    atomic_write_bytes(out / "mdai-annotations.parquet", accepted_frame.to_parquet(index=False))
    kept_regions = pd.DataFrame([{k: v for k, v in r.items() if k != "index"} for r in region_rows
                                 if not r.get("refused")])  # fmt: skip
    atomic_write_bytes(out / "mdai-regions.parquet", kept_regions.to_parquet(index=False))
    _write_table(accepted_frame, out / "mdai-labels.csv", summary)
    log.info("MD.ai import: %s", summary.as_dict())
    return summary


def _write_table(rows: pd.DataFrame, path: Path, summary: ImportSummary) -> None:
    """One row per patient, one column per label group: the most frequent label (ties: first seen)."""
    from tasks.deid.table import write_labels

    table: dict[str, dict[str, str]] = {}
    for (patient, group), labels in rows.groupby(["patient_id", "label_group"], sort=True)["label"]:
        table.setdefault(patient, {})[_slug(group)] = Counter(labels).most_common(1)[0][0]
    frame = pd.DataFrame([{"patient_id": p, **v} for p, v in table.items()])
    summary.patients, summary.label_groups = len(frame), len(frame.columns) - 1
    write_labels(frame, path, id_col="patient_id", source="MD.ai export (medflow labels import-mdai)")


def _draw_regions(dataset: Path, ids: DatasetIds, parsed: MdaiExport, regions: list, summary: ImportSummary
                  ) -> list[dict[str, Any]]:  # fmt: skip
    """Draw boxes and masks into one label image per node; rows for ``mdai-regions.parquet``."""
    region_ids = sorted({label.id for _, label, _, _, _ in regions})
    values = {lid: i + 1 for i, lid in enumerate(region_ids)}
    images: dict[str, np.ndarray] = {}
    rows = []
    for row, label, sop, patient, index in regions:
        key, z = ids.slices.get(sop, (sop, None))
        try:
            path, _, _, shape = image_grid(dataset, key)
        except ValueError:
            summary.refuse("no-image")
            rows.append({"refused": True, "index": index})
            continue
        data = images.setdefault(key, np.zeros(shape, np.uint16))
        frames, view_frame, sy, sx = _targets(dataset, key, path, shape, row.frame, z)
        if frames is None or not row.data:
            summary.refuse("outside-timeline" if frames is None else "no-geometry")
            rows.append({"refused": True, "index": index})
            continue
        planes = [data] if data.ndim == 2 else [data[f] for f in frames]
        marked = sum(draw(p, label.mode or "", row.data, values[label.id], sy, sx) for p in planes)
        if not marked:
            summary.refuse("no-geometry")
            rows.append({"refused": True, "index": index})
            continue
        summary.regions += 1
        rows.append({"patient_id": patient, "node": key, "label_group": label.group, "label": label.name,
                     "label_value": values[label.id], "mode": label.mode, "frames": [int(f) for f in frames],
                     "view_frame": view_frame, "pixels": marked, "index": index})  # fmt: skip
    for key, data in images.items():
        used = sorted(int(v) for v in np.unique(data) if v)
        if not used:
            continue
        names = {values[lid]: parsed.labels[lid] for lid in region_ids}
        props = [{"label-value": v, "label": names[v].name, "group": names[v].group} for v in used]
        colors = {v: _colour(v) for v in used}
        write_label_image(dataset, key, LABEL_IMAGE, data, props, colors)
        summary.label_images += 1
    return rows


def _targets(dataset: Path, key: str, path: str, shape: tuple[int, ...], frame: int | None, z: int | None
             ) -> tuple[list[int] | None, int | None, float, float]:  # fmt: skip
    """Stored frames (of the OME image array) the annotation lands on, the training view's frame, and the scale
    from original pixels to that grid. ``None`` frames: the frame is not on the stored timeline."""
    if len(shape) == 2:
        return [0], None, 1.0, 1.0
    if z is not None:  # a slice of an assembled volume
        return [z], None, 1.0, 1.0
    group = zarr.open_group(store_path(dataset) / key, mode="r")
    native = group["0"].shape
    view = group.get("view")
    sources = list(view.attrs.get("source_frames", [])) if view is not None else []
    view_frame = None
    if frame is not None and sources:
        view_frame = int(np.argmin(np.abs(np.asarray(sources) - frame)))
    if path == "0":  # the native array: the original's frames and pixels
        if frame is None:
            return list(range(shape[0])), view_frame, 1.0, 1.0
        return ([frame] if 0 <= frame < shape[0] else None), view_frame, 1.0, 1.0
    # a colour video's OME image is its grayscale view: view frames taken from that source frame, resized pixels
    sy, sx = shape[1] / native[1], shape[2] / native[2]
    if frame is None:
        return list(range(shape[0])), None, sy, sx
    picked = [i for i, s in enumerate(sources) if s == frame]
    return (picked or None), view_frame, sy, sx


def _colour(value: int) -> tuple[int, int, int, int]:
    palette = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]
    return (*palette[(value - 1) % len(palette)], 255)
