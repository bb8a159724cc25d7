"""Text layouts that cines, images and slices of one device (and series) share: where their text is.

A layout is the list of text boxes found on the first instance of a key; later instances with the same key are
masked with those boxes after a cheap verification (``tasks.pixels.clean`` for cines and images,
``tasks.pixels.check`` for CT/MR slices). Keys are hashes of the device description (manufacturer, model,
software versions, size, photometric interpretation, ultrasound regions) and, for series-level layouts, of the
(de-identified) series UID. A layout holds boxes and counts only: no pixel content, no text, no header value.

Device layouts persist per dataset in ``pixel-layouts.json`` (``LayoutCache(path)``), so the next run starts warm;
series layouts live in memory (a series is judged once per process).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import Dataset

from tasks.pixels.detector import Box

log = logging.getLogger(__name__)

LAYOUT_FILE = "pixel-layouts.json"
DEVICE_ATTRIBUTES = (
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "Rows",
    "Columns",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "Modality",
)
REGION_ATTRIBUTES = ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1", "RegionLocationMaxY1")


@dataclass
class Layout:
    """Text boxes of one key, and regions the detector found no text in (candidates not to ask about again)."""

    boxes: list[Box] = field(default_factory=list)
    rejected: list[Box] = field(default_factory=list)
    uses: int = 0


def device_key(ds: Dataset) -> str:
    """Hash of the device description of ``ds`` (no value can be read back from it)."""
    parts = [str(ds.get(k, "")) for k in DEVICE_ATTRIBUTES]
    for item in ds.get("SequenceOfUltrasoundRegions") or []:
        parts.append(",".join(str(item.get(k, "")) for k in REGION_ATTRIBUTES))
    return _hash("device", *parts)


def series_key(ds: Dataset) -> str:
    """Hash of the device description and the series UID of ``ds`` (call after de-identification: keyed UIDs)."""
    return _hash("series", device_key(ds), str(ds.get("SeriesInstanceUID", "")))


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class LayoutCache:
    """Layouts by key, in memory; device layouts are also saved to ``path`` (JSON) when one is given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._layouts: dict[str, Layout] = {}
        self._persisted: set[str] = set()
        self._lock = threading.Lock()
        if path is not None and path.is_file():
            try:
                stored = json.loads(path.read_text())
                self._layouts = {
                    k: Layout(boxes=[tuple(b) for b in v["boxes"]]) for k, v in stored.get("layouts", {}).items()
                }
                self._persisted = set(self._layouts)
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("pixel layout file unreadable; starting cold")

    def get(self, key: str) -> Layout | None:
        return self._layouts.get(key)

    def put(self, key: str, layout: Layout, *, persist: bool = False) -> None:
        with self._lock:
            self._layouts[key] = layout
            if persist:
                self._persisted.add(key)
        if persist and self.path is not None:
            self._save()

    def drop(self, key: str) -> None:
        with self._lock:
            self._layouts.pop(key, None)

    def __len__(self) -> int:
        return len(self._layouts)

    def _save(self) -> None:
        """Merge this process's device layouts into the file (other workers write it too), atomically."""
        assert self.path is not None
        try:
            stored = json.loads(self.path.read_text()).get("layouts", {}) if self.path.is_file() else {}
        except (OSError, ValueError):
            stored = {}
        with self._lock:
            mine = {
                k: {"boxes": [[int(c) for c in b] for b in v.boxes]}
                for k, v in self._layouts.items()
                if k in self._persisted
            }
        stored.update(mine)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"about": "text boxes per device key (hashed); no PHI", "layouts": stored}))
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            log.warning("pixel layout file not writable; layouts kept in memory only")


@functools.cache
def process_cache(path: str | None = None) -> LayoutCache:
    """The layout cache of this process for ``path`` (a dataset's layout file, or None: memory only)."""
    return LayoutCache(Path(path) if path else None)
