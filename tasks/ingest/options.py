"""Options of one ingest run (picklable; built once at the entry point and passed to every batch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.qc.rules import QcRules

DEID_DIR = "deid"  # DATASET/deid/<patient>/<study>/<series>/<instance>.dcm with --keep-deid


@dataclass(frozen=True)
class IngestOptions:
    """Training-view shape and rate, batch sizing, the per-file time limit and QC thresholds."""

    target_fps: float = 50.0
    view_size: int = 112
    batch_bytes: int = 96 * 1024**2  # decoded pixel bytes per batch: a few seconds of work per task
    batch_files: int = 200
    file_timeout_s: float | None = 600.0  # per input, enforced by the worker pool (MEDFLOW_FILE_TIMEOUT_S)
    qc: QcRules = field(default_factory=QcRules)
    keep_deid: bool = False  # also keep each de-identified instance as DICOM under DATASET/deid/ (for export)
