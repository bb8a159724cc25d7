"""Prefect wrapper: audit a dataset at the end of a run; the result carries counts and a verdict, no values."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from tasks.atomic import atomic_write_bytes
from tasks.audit.run import audit_dataset


@task(name="phi-audit", cache_policy=NO_CACHE, persist_result=False)
def audit_task(
    dataset: str,
    originals: str | None,
    report_path: str | None = None,
    ocr: bool = True,
    key_file: str | None = None,
    run_id: str | None = None,
    prefect_database: bool = True,
) -> dict:
    """Run :func:`audit_dataset`; write the JSON report to ``report_path``; return JSON-safe counts.

    With the de-identification key (``key_file`` or ``MEDFLOW_DEID_KEY``) dates that the de-identification
    produces by design are not reported as leaks (see :func:`tasks.audit.collect.collect_patterns`). With
    ``run_id``, OCR reads every array that run stored (sampled frames each); the local Prefect server's database
    is searched too unless ``prefect_database`` is off.
    """
    report = audit_dataset(
        Path(dataset),
        Path(originals) if originals else None,
        ocr=ocr,
        ocr_nodes=run_nodes(Path(dataset), run_id) if run_id else None,
        date_shift=date_shift_for(key_file),
        prefect_database=prefect_database,
    )
    if report_path:
        atomic_write_bytes(Path(report_path), report.to_json().encode())
    try:
        logger = get_run_logger()
    except MissingContextError:  # called as .fn() outside a run
        logger = logging.getLogger(__name__)
    logger.info(
        "PHI audit: %d files, %d arrays read by OCR, Prefect database %s, %d findings",
        report.files_scanned,
        report.arrays_ocr,
        report.prefect_database,
        len(report.findings),
    )
    return {
        "ok": report.ok,
        "findings": len(report.findings),
        "files_scanned": report.files_scanned,
        "arrays_ocr": report.arrays_ocr,
        "patterns": report.patterns,
        "prefect_database": report.prefect_database,
    }


def run_nodes(dataset: Path, run_id: str) -> set[str]:
    """Zarr nodes (pseudonymous keys) that run ``run_id`` stored, from ``DATASET/inputs.jsonl`` (the ledger)."""
    import json

    from tasks.ingest.ledger import LEDGER_FILE, Status

    nodes: set[str] = set()
    path = Path(dataset) / LEDGER_FILE
    if not path.exists():
        return nodes
    with path.open() as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("run_id") == run_id and row.get("status") == Status.STORED and row.get("zarr_key"):
                nodes.add(str(row["zarr_key"]).split("/", 1)[0])
    return nodes


def date_shift_for(key_file: str | None) -> Callable[[object], int] | None:
    """The de-identifier's per-patient day offset under the key, or None when no key is configured."""
    from tasks.config import load_settings
    from tasks.deid.keys import key_configured, load_key
    from tasks.deid.pseudonyms import Pseudonymizer

    settings = load_settings(key_file=Path(key_file) if key_file else None)
    if not key_configured(settings):
        return None
    pseudonyms = Pseudonymizer(load_key(settings=settings))

    def shift(ds: object) -> int:
        return pseudonyms.date_offset_days(
            str(getattr(ds, "PatientID", "") or ""), str(getattr(ds, "StudyInstanceUID", "") or "")
        )

    return shift
