"""Parse MD.ai's annotation export (JSON) into plain records; no I/O beyond reading the parsed object.

The layout, as MD.ai documents it and its ``mdai`` client reads it (``mdai.common_utils.json_to_dataframe``)::

    {"datasets": [{"id", "name", "studies": [...],
                   "annotations": [{"id", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "labelId",
                                    "annotationNumber", "frameNumber", "data", "createdById", ...}]}],
     "labelGroups": [{"id", "name", "labels": [{"id", "name", "type", "scope", "annotationMode", ...}]}]}

``scope`` is ``EXAM``, ``SERIES`` or ``INSTANCE`` (the UI's Exam / Series / Image); ``annotationMode`` is ``null``
for a global label, else ``bbox`` (``data = {x, y, width, height}``), ``polygon``/``freeform``/``line``
(``data.vertices = [[x, y], ...]``), ``mask`` (``data.foreground`` / ``data.background``: lists of polygons) or
``location`` (``data = {x, y}``). Coordinates are pixels of the original image; ``frameNumber`` is the 0-based frame
of a multi-frame instance (absent for a single frame or a label on the whole instance).

The ``mdai`` client is not a dependency: its current release pins Pillow < 12 and pulls the GUI ``opencv-python``,
which would downgrade our Pillow and shadow ``opencv-python-headless``; this module reads the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tasks.errors import ConfigError


class Scope(StrEnum):
    EXAM = "exam"
    SERIES = "series"
    IMAGE = "image"


_SCOPES = {"EXAM": Scope.EXAM, "STUDY": Scope.EXAM, "SERIES": Scope.SERIES, "INSTANCE": Scope.IMAGE,
           "IMAGE": Scope.IMAGE}  # fmt: skip
#: annotation modes that mark pixels (the others are labels of the exam, series or image)
REGION_MODES = {"bbox", "polygon", "freeform", "mask", "location", "line"}


@dataclass(frozen=True)
class LabelDef:
    """One label of the project: id, name, its group, scope and annotation mode (None: a global label)."""

    id: str
    name: str
    group: str
    scope: Scope
    mode: str | None

    @property
    def is_region(self) -> bool:
        return self.mode in REGION_MODES


@dataclass(frozen=True)
class Annotation:
    """One annotation row: UIDs as exported (original or de-identified), label, frame, geometry, annotator."""

    label_id: str
    study_uid: str | None
    series_uid: str | None
    sop_uid: str | None
    frame: int | None
    data: dict[str, Any] | None
    annotator: str | None


@dataclass(frozen=True)
class MdaiExport:
    labels: dict[str, LabelDef]
    annotations: list[Annotation]


def _text(value: Any) -> str | None:
    return str(value).strip() if value not in (None, "") else None


def parse_export(data: Any) -> MdaiExport:
    """Label definitions and annotation rows of an export; ConfigError (no values quoted) when it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), list):
        raise ConfigError("not an MD.ai annotation export: no 'datasets' list at the top level")
    labels: dict[str, LabelDef] = {}
    for group in data.get("labelGroups") or []:
        for label in group.get("labels") or []:
            scope = _SCOPES.get(str(label.get("scope") or "INSTANCE").upper())
            if scope is None or not label.get("id"):
                raise ConfigError("MD.ai export: a label has no id or an unknown scope (EXAM, SERIES, INSTANCE)")
            mode = _text(label.get("annotationMode"))
            labels[str(label["id"])] = LabelDef(str(label["id"]), str(label.get("name") or label["id"]),
                                                str(group.get("name") or group.get("id") or "default"), scope,
                                                mode.lower() if mode else None)  # fmt: skip
    annotations = []
    for dataset in data["datasets"]:
        for row in dataset.get("annotations") or []:
            frame = row.get("frameNumber")
            annotations.append(Annotation(
                label_id=str(row.get("labelId")),
                study_uid=_text(row.get("StudyInstanceUID")),
                series_uid=_text(row.get("SeriesInstanceUID")),
                sop_uid=_text(row.get("SOPInstanceUID")),
                frame=int(frame) if isinstance(frame, int | float) else None,
                data=row.get("data") if isinstance(row.get("data"), dict) else None,
                annotator=_text(row.get("createdById")),
            ))  # fmt: skip
    return MdaiExport(labels, annotations)
