"""Process one batch: read → de-identify (+ clean pixels) → normalise → write Zarr, one ledger line per input.

Runs inside a worker process (local pool or Dask). Each input's start and its outcome (status, reason, arrays
written) go to a :class:`tasks.workers.Progress`, so the pool can enforce the per-file time limit and the
caller counts outcomes even of a batch whose worker was stopped. Arrays and PHI never leave here.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom import Dataset

from tasks.discovery import is_regular_file
from tasks.errors import InputError, MedflowError, QuarantineReason
from tasks.ingest.discover import VOLUME_MODALITIES
from tasks.ingest.ledger import Status, record_input
from tasks.ingest.nodes import Ids, Node, video_node, volume_node
from tasks.ingest.options import DEID_DIR, IngestOptions
from tasks.normalize.pixels import decode, frames_first
from tasks.normalize.volume import Slice, assemble_volume, slice_from_dataset, slices_from_enhanced, slices_from_volume
from tasks.pixels.policy import SECONDARY_CAPTURE_PREFIX
from tasks.quarantine import QuarantineRecord, quarantine
from tasks.store.zarr_store import node_attrs, node_exists, read_node, write_node
from tasks.workers import LocalProgress, Progress

if TYPE_CHECKING:
    from tasks.deid.context import DeidContext

log = logging.getLogger(__name__)

UNSUPPORTED_MODALITIES = frozenset({"SEG", "RTDOSE", "RTSTRUCT", "RTPLAN", "RTIMAGE", "SR", "KO", "PR", "REG", "ECG"})
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass
class BatchCounts:
    """JSON-safe outcome of a batch: per-status counts, quarantine reasons, seconds spent."""

    discovered: int = 0
    stored: int = 0
    skipped: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    arrays_written: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def add(self, status: str, reason: str = "", arrays: int = 0) -> None:
        """Count one input's outcome (a :class:`Status` value, its quarantine reason, arrays it wrote)."""
        self.discovered += 1
        self.arrays_written += arrays
        if status == Status.STORED:
            self.stored += 1
        elif status == Status.SKIPPED:
            self.skipped += 1
        else:
            self.quarantined += 1
            self.reasons[reason] = self.reasons.get(reason, 0) + 1

    @classmethod
    def from_records(cls, records: list[tuple[str, str, int]]) -> BatchCounts:
        counts = cls()
        for record in records:
            counts.add(*record)
        return counts


def classify(ds: Dataset) -> str:
    """ "slice" (single-frame CT/MR/PT: assembled per series), "volume" (multi-frame CT/MR/PT), "frames"."""
    modality = str(ds.get("Modality", "") or "")
    if not any(k in ds for k in PIXEL_KEYWORDS) or modality in UNSUPPORTED_MODALITIES:
        raise InputError(  # names the tag only: a Modality value can be anything, even a name
            "no image pixel data (7FE0,0010) or a modality (0008,0060) that ingest does not store",
            reason=QuarantineReason.UNSUPPORTED,
            step="ingest",
        )
    frames = int(ds.get("NumberOfFrames") or 1) if str(ds.get("NumberOfFrames", "1")).strip().isdigit() else 1
    if modality in VOLUME_MODALITIES and is_cross_sectional(ds):
        return "volume" if frames > 1 else "slice"
    return "frames"


def is_cross_sectional(ds: Dataset) -> bool:
    """A grayscale image of a cross-sectional SOP class: a secondary capture (a screenshot, a report page) or a
    colour image labelled CT/MR/PT is stored as frames, not assembled into a volume it cannot belong to."""
    sop_class = str(ds.get("SOPClassUID", ""))
    return int(ds.get("SamplesPerPixel") or 1) == 1 and not sop_class.startswith(SECONDARY_CAPTURE_PREFIX)


def _cleaning(result: Any) -> dict[str, Any]:
    return {
        "pixels_cleaned": result.cleaned is not None,
        "pixel_report": result.pixel_report,
        "action_counts": result.action_counts,
        "options_applied": result.options_applied,
    }


def _pixels(result: Any) -> np.ndarray:
    """Cleaned pixels when cleaning ran, else decoded from the de-identified dataset."""
    if result.pixels is not None:
        return frames_first(result.dataset, np.asarray(result.pixels))
    return decode(result.dataset)


@dataclass
class _PendingSlice:
    index: int
    source_id: str
    ds: Dataset
    slice: Slice
    cleaning: dict[str, Any]
    ids: Ids


class BatchProcessor:
    """Holds the run context for one batch and reports each input's start and fate to ``progress``."""

    def __init__(
        self, dataset: Path, ctx: DeidContext, options: IngestOptions, run_id: str, progress: Progress | None = None
    ):
        from tasks.pixels.layout import LAYOUT_FILE

        self.dataset, self.options, self.run_id = Path(dataset), options, run_id
        self.ctx = ctx.with_layout_file(self.dataset / LAYOUT_FILE)  # the next run starts with known layouts
        self.progress = progress if progress is not None else LocalProgress()
        self._arrays = 0  # arrays published since the last recorded input
        self._stored_slices: dict[str, set[str]] = {}  # series key -> instances its stored volume holds

    def _record(self, index: int, source_id: str, status: Status, key: str | None, reason: str = "") -> None:
        record_input(self.dataset, source_id=source_id, status=status, run_id=self.run_id, zarr_key=key, reason=reason)
        self.progress.done(index, (str(status), reason, self._arrays))
        self._arrays = 0

    def _quarantine(self, index: int, source_id: str, error: MedflowError) -> None:
        quarantine(self.dataset, QuarantineRecord.from_error(source_id, error))
        self._record(index, source_id, Status.QUARANTINED, None, str(error.reason))

    def _publish(self, node: Node, *, replace: bool = False) -> bool:
        written = write_node(self.dataset, node.key, node.arrays, {**node.attrs, "manifest": node.row}, replace=replace)
        self._arrays += int(written)
        return written

    def run(self, paths: list[Path]) -> None:
        """Process ``paths``; every one gets exactly one ledger line and one record."""
        from tasks.deid.instance import deidentify_instance
        from tasks.deid.reader import read_dicom

        series: dict[str, list[_PendingSlice]] = defaultdict(list)
        for index, path in enumerate(paths):
            self.progress.start(index)
            source_id = self.ctx.pseudonymizer.source_id(path)
            try:
                if not is_regular_file(path):  # FIFO, folder, dangling symlink, symlink loop: never opened
                    raise InputError(
                        "not a readable regular file (a folder that cannot be listed, FIFO, device, dangling "
                        "symlink or symlink loop)",
                        reason=QuarantineReason.UNREADABLE,
                        step="read",
                    )
                ds = read_dicom(path, max_pixel_bytes=self.ctx.max_pixel_bytes)
                what = classify(ds)
                pseudo = self.ctx.pseudonymizer
                key = pseudo.uid(str(ds.SeriesInstanceUID if what == "slice" else ds.SOPInstanceUID))
                if node_exists(self.dataset, key) and (
                    what != "slice"
                    or self._assembled(key, pseudo.uid(str(ds.get("SOPInstanceUID", "")).strip(" \x00")))
                ):
                    self._record(index, source_id, Status.SKIPPED, f"{key}/0")
                    continue
                result = deidentify_instance(ds, self.ctx)
                if self.options.keep_deid:  # before the pixels are read: the file is what ``medflow deid`` writes
                    from tasks.deid.folder import write_instance

                    write_instance(result, self.dataset / DEID_DIR / result.relpath)
                ids = Ids(result.patient_id, result.study_id, result.series_id, result.instance_id)
                pixels = _pixels(result)
                if what == "slice":
                    piece = slice_from_dataset(result.dataset, pixels[0], ids.instance_id)
                    series[ids.series_id].append(
                        _PendingSlice(index, source_id, result.dataset, piece, _cleaning(result), ids)
                    )
                    continue
                if what == "volume":
                    slices = slices_from_enhanced(result.dataset, pixels, ids.instance_id)
                    volume = assemble_volume(slices, hounsfield=ds.get("Modality") == "CT")
                    node = volume_node(result.dataset, volume, ids, key=ids.instance_id, cleaning=_cleaning(result))
                else:
                    node = video_node(
                        result.dataset,
                        pixels,
                        ids,
                        target_fps=self.options.target_fps,
                        view_size=self.options.view_size,
                        cleaning=_cleaning(result),
                    )
                written = self._publish(node)
                self._record(index, source_id, Status.STORED if written else Status.SKIPPED, node.row["zarr_key"])
            except MedflowError as error:
                self._quarantine(index, source_id, error)
            except Exception as exc:  # the task edge: an unexpected failure quarantines this input only
                log.warning("unexpected %s while ingesting one input; quarantined", type(exc).__name__)
                self._quarantine(
                    index,
                    source_id,
                    MedflowError(
                        f"unexpected {type(exc).__name__} during ingest",
                        reason=QuarantineReason.UNREADABLE,
                        step="ingest",
                    ),
                )
        for series_id, pending in series.items():
            self.progress.start(*(p.index for p in pending))
            self._store_series(series_id, pending)

    def _assembled(self, key: str, instance_id: str) -> bool:
        """Whether the stored volume ``key`` was assembled with the slice ``instance_id`` (pseudonymous)."""
        if key not in self._stored_slices:  # metadata only: a re-run must not read every stored volume
            attrs = node_attrs(self.dataset, key)
            self._stored_slices[key] = set(attrs.get("source_instance_ids") or attrs.get("slice_instance_ids") or [])
        return instance_id in self._stored_slices[key]

    def _store_series(self, series_id: str, pending: list[_PendingSlice]) -> None:
        """Assemble the series' slices into its volume; slices of a series stored by an earlier run are placed
        among the stored ones and the volume replaces the old one (a series may reach the source in parts)."""
        first = pending[0]
        try:
            slices = [p.slice for p in pending]
            sources = [p.ids.instance_id for p in pending]
            extend = node_exists(self.dataset, series_id)
            if extend:
                data, attrs = read_node(self.dataset, series_id)
                slices = slices_from_volume(data, attrs) + slices
                sources += list(attrs.get("source_instance_ids") or attrs.get("slice_instance_ids") or [])
            volume = assemble_volume(slices, hounsfield=first.ds.get("Modality") == "CT")
            ids = Ids(first.ids.patient_id, first.ids.study_id, series_id, series_id)
            node = volume_node(
                first.ds, volume, ids, key=series_id, cleaning=first.cleaning, source_instance_ids=sources
            )
            written = self._publish(node, replace=extend)
        except MedflowError as error:
            for p in pending:
                self._quarantine(p.index, p.source_id, error)
            return
        except Exception as exc:  # never the exception text: it may quote a value
            log.warning("unexpected %s while assembling one series; quarantined", type(exc).__name__)
            error = MedflowError(
                f"unexpected {type(exc).__name__} while assembling a series",
                reason=QuarantineReason.NORMALISE_FAILED,
                step="normalize",
            )
            for p in pending:
                self._quarantine(p.index, p.source_id, error)
            return
        for p in pending:
            self._record(p.index, p.source_id, Status.STORED if written else Status.SKIPPED, node.row["zarr_key"])


def process_paths(
    paths: list[str], dataset: Path, ctx: DeidContext, options: IngestOptions, run_id: str, *, progress: Progress
) -> None:
    """Process ``paths`` (one batch, or what is left of it after a stopped worker), reporting to ``progress``."""
    BatchProcessor(dataset, ctx, options, run_id, progress).run([Path(p) for p in paths])


def record_stopped(dataset: Path, source_id: str, run_id: str, reason: QuarantineReason) -> tuple[str, str, int]:
    """Quarantine an input whose worker process was stopped (``timeout``) or died (``worker-crashed``); written
    by the caller, since the worker cannot. Returns its record."""
    messages = {
        QuarantineReason.TIMEOUT: "processing ran past the per-file time limit (MEDFLOW_FILE_TIMEOUT_S); "
        "its worker process was stopped",
        QuarantineReason.WORKER_CRASHED: "the worker process died while processing this input (a decoder crash "
        "or the memory limit)",
    }
    error = MedflowError(messages[reason], reason=reason, step="ingest")
    quarantine(Path(dataset), QuarantineRecord.from_error(source_id, error))
    record_input(
        Path(dataset), source_id=source_id, status=Status.QUARANTINED, run_id=run_id, zarr_key=None, reason=reason
    )
    return str(Status.QUARANTINED), str(reason), 0
