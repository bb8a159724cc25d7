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
    ocr_max_arrays: int = 50,
    key_file: str | None = None,
) -> dict:
    """Run :func:`audit_dataset`; write the JSON report to ``report_path``; return JSON-safe counts.

    With the de-identification key (``key_file`` or ``MEDFLOW_DEID_KEY``) dates that the de-identification
    produces by design are not reported as leaks (see :func:`tasks.audit.collect.collect_patterns`).
    """
    report = audit_dataset(
        Path(dataset),
        Path(originals) if originals else None,
        ocr=ocr,
        ocr_max_arrays=ocr_max_arrays,
        date_shift=date_shift_for(key_file),
    )
    if report_path:
        atomic_write_bytes(Path(report_path), report.to_json().encode())
    try:
        logger = get_run_logger()
    except MissingContextError:  # called as .fn() outside a run
        logger = logging.getLogger(__name__)
    logger.info(
        "PHI audit: %d files, %d arrays read by OCR, %d findings",
        report.files_scanned,
        report.arrays_ocr,
        len(report.findings),
    )
    return {
        "ok": report.ok,
        "findings": len(report.findings),
        "files_scanned": report.files_scanned,
        "arrays_ocr": report.arrays_ocr,
        "patterns": report.patterns,
    }


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
