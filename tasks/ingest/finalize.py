"""After all batches: manifest, dataset-level echo intensity, QC, run summary (all JSON-safe, no PHI)."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import zarr
from zarr.storage import LocalStore

from tasks.atomic import atomic_write_bytes
from tasks.ingest.options import IngestOptions
from tasks.normalize.intensity import pooled_mean_std
from tasks.qc.validate import run_qc
from tasks.store.manifest import updated_manifest, write_manifest
from tasks.store.zarr_store import clear_staging, ensure_root

log = logging.getLogger(__name__)

WORK_DIR = ".work"
RUNS_DIR = "ingest-runs"


@dataclass
class IngestSummary:
    """What one ingest run did: per-input counts (stored + skipped + quarantined = discovered), QC, paths."""

    run_id: str
    dataset: str
    discovered: int = 0
    stored: int = 0
    skipped: int = 0
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    arrays_written: int = 0
    manifest_rows: int = 0
    new_rows: int = 0
    qc_failed_rows: int = 0
    qc_failure_share: float = 0.0
    qc_exceeded: bool = False
    qc_by_expectation: dict[str, int] = field(default_factory=dict)
    qc_docs: str | None = None
    audit_findings: int | None = None  # PHI audit of the run's output (None: not run)
    audit_files_scanned: int = 0
    audit_report: str | None = None
    batches: int = 0
    batch_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def balanced(self) -> bool:
        return self.stored + self.skipped + self.quarantined == self.discovered

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"discovered {self.discovered} = stored {self.stored} + skipped {self.skipped} "
            f"+ quarantined {self.quarantined}"
        )


def add_counts(summary: IngestSummary, counts: list[dict]) -> None:
    reasons: Counter[str] = Counter(summary.quarantine_reasons)
    for c in counts:
        summary.discovered += c["discovered"]
        summary.stored += c["stored"]
        summary.skipped += c["skipped"]
        summary.quarantined += c["quarantined"]
        summary.arrays_written += c["arrays_written"]
        summary.batch_seconds += c["seconds"]
        reasons.update(c["reasons"])
    summary.quarantine_reasons = dict(reasons)
    summary.batches += len(counts)


def _record_video_intensity(dataset: Path, frame: pd.DataFrame) -> dict:
    """Pool the per-view mean/std (weighted by frame count) into the echo dataset mean/std, in root attrs."""
    videos = frame[frame["view_key"].notna()] if "view_key" in frame else frame.iloc[0:0]
    parts = [
        (float(r.view_mean), float(r.view_std), int(r.view_frames))
        for r in videos.itertuples()
        if pd.notna(r.view_mean) and pd.notna(r.view_frames)
    ]
    params = {**pooled_mean_std(parts), "applies_to": "view arrays (uint8)"}
    root = zarr.open_group(store=LocalStore(ensure_root(dataset)), mode="a", zarr_format=3)
    root.attrs.update({"intensity": {"video": params}, "layout": "medflow/1"})
    return params


def write_run_summary(dataset: Path, summary: IngestSummary) -> None:
    """``DATASET/ingest-runs/<run-id>.json`` (counts only)."""
    atomic_write_bytes(dataset / RUNS_DIR / f"{summary.run_id}.json", json.dumps(summary.as_dict(), indent=2).encode())


def finalize_run(dataset: Path, summary: IngestSummary, options: IngestOptions) -> IngestSummary:
    """Bring the manifest up to date, record echo mean/std, run QC, write the run summary.

    Called once every batch has finished, so whatever a stopped worker left half-written in ``.staging`` goes.
    """
    dataset = Path(dataset)
    clear_staging(dataset)
    frame, new_rows = updated_manifest(dataset, summary.run_id)
    if len(frame):
        _record_video_intensity(dataset, frame)
        frame, qc = run_qc(frame, dataset, options.qc, summary.run_id)
        write_manifest(dataset, frame)
        summary.qc_failed_rows = qc.failed_rows
        summary.qc_failure_share = qc.failure_share
        summary.qc_exceeded = qc.exceeded
        summary.qc_by_expectation = qc.by_expectation
        summary.qc_docs = qc.docs_index
    summary.manifest_rows, summary.new_rows = len(frame), new_rows
    write_run_summary(dataset, summary)
    shutil.rmtree(dataset / WORK_DIR / summary.run_id, ignore_errors=True)
    log.info("ingest %s: %s", summary.run_id, summary.line())
    return summary
