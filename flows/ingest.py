"""Prefect flow ``ingest``: discover → batches by series → parallel batch tasks → manifest + QC → artifacts.

Thin by design: the work is in ``tasks.ingest``. Tasks receive batch-file paths, opaque run ids and the
key-file path (never the key: each task rebuilds the de-identification context from the key file or
MEDFLOW_DEID_KEY); they return counts. No arrays, PHI or source paths cross Prefect, and no task result is
persisted. The flow run is tagged ``modality:<code>`` per modality found and batch task names carry their
modalities (DICOM defined terms only, never a raw header value; batch tasks carry no tags, whose concurrency
leases cost seconds per run).
Locally, batch tasks run on threads (states, logs per batch) that hand the work to one process pool
per run (:mod:`tasks.ingest.pool`, the pool ``ingest_folder`` uses); ``--dask-address`` runs them on Dask.
At the end the PHI audit (:mod:`tasks.audit`) searches the dataset for the originals' identifying values;
a finding fails the run.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.futures import as_completed

from tasks.audit.task import audit_task
from tasks.config import load_settings
from tasks.errors import MedflowError, QuarantineReason
from tasks.ingest.finalize import RUNS_DIR, WORK_DIR, IngestSummary, add_counts, finalize_run, write_run_summary
from tasks.ingest.folder import new_run_id, prepare_run
from tasks.ingest.lock import dataset_lock
from tasks.ingest.options import IngestOptions
from tasks.ingest.pool import batch_pool, registered_pool, run_batch
from tasks.qc.rules import QcRules

EVENT = "medflow.dataset.updated"
PROGRESS_EVERY = 2.0
"""Seconds between progress artifact updates."""


@task(name="plan-batches", cache_policy=NO_CACHE, persist_result=False)
def plan_task(
    source: str, dataset: str, options: IngestOptions, run_id: str, workers: int
) -> list[tuple[str, list[str]]]:
    """Discover inputs and write batch files; return (path inside DATASET/.work/<run-id>, modality codes)."""
    return [
        (str(b.path), list(b.modalities)) for b in prepare_run(Path(source), Path(dataset), options, run_id, workers)
    ]


def modality_tags(modalities: list[str]) -> list[str]:
    """Prefect tags for DICOM modality codes: ``modality:<code>`` each."""
    return [f"modality:{m}" for m in modalities]


def tag_flow_run(tags_: list[str]) -> None:
    """Add ``tags_`` to the running flow run (modalities are known only once the run has planned its batches).

    Batch tasks are not tagged themselves: Prefect acquires a tag-concurrency lease for every tagged task run,
    which cost ~2 s at the start of a run and occasional multi-second stalls; their names carry the modalities.
    """
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if not tags_ or not flow_run.id:
        return
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run.id)
        client.update_flow_run(flow_run.id, tags=sorted(set(run.tags) | set(tags_)))


@task(name="process-batch", task_run_name="batch-{index}-{modalities}", cache_policy=NO_CACHE, persist_result=False)
def batch_task(
    batch_file: str,
    index: int,
    modalities: str,
    dataset: str,
    key_file: str | None,
    clean_pixels: str | None,
    options: IngestOptions,
    run_id: str,
    ocr_every_frame: bool | None = None,
    ocr_engine: str | None = None,
) -> dict:
    """De-identify, normalise and store the inputs of one batch; return counts.

    Locally the work runs in the run's process pool (:mod:`tasks.ingest.pool`) and this task thread waits for
    it; on a Dask worker (no pool registered there) it runs right here. The key never is a parameter: the
    context is rebuilt here from ``key_file`` or MEDFLOW_DEID_KEY. The batch's counts and (PHI-free)
    warnings go to this task's Prefect log.
    """
    logger = get_run_logger()
    # per batch (ms): a long-lived Dask worker sees a rotated key
    ctx = build_context(key_file, clean_pixels, ocr_every_frame, ocr_engine)
    pool = registered_pool(run_id)
    counts = run_batch(pool, Path(batch_file), Path(dataset), ctx, options, run_id)
    for warning in counts.pop("warnings", []):
        logger.warning("%s", warning)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(counts["reasons"].items()))
    logger.info(
        "batch %d: %d inputs = %d stored + %d skipped + %d quarantined%s; %d arrays written in %.1f s",
        index,
        counts["discovered"],
        counts["stored"],
        counts["skipped"],
        counts["quarantined"],
        f" ({reasons})" if reasons else "",
        counts["arrays_written"],
        counts["seconds"],
    )
    return counts


@task(name="manifest-and-qc", cache_policy=NO_CACHE, persist_result=False)
def finalize_task(dataset: str, summary: IngestSummary, options: IngestOptions) -> IngestSummary:
    """Update manifest.parquet, pool echo intensity, run the Great Expectations suites."""
    return finalize_run(Path(dataset), summary, options)


def make_task_runner(workers: int, dask_address: str | None) -> Any:
    """An existing Dask cluster when ``dask_address`` is given; else task threads that wait on the run's
    local process pool: two per worker process, so a batch is queued in the pool while another task
    thread talks to the Prefect API (a task's Running time then includes its wait in the pool's queue).
    With one worker, one thread runs the batches itself."""
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=1 if workers <= 1 else 2 * workers)


def build_context(
    key_file: str | None, clean_pixels: str | None, ocr_every_frame: bool | None = None, ocr_engine: str | None = None
) -> Any:
    """The de-identification context from the key file or MEDFLOW_DEID_KEY (never a flow parameter); the OCR
    options, when None, come from MEDFLOW_OCR_EVERY_FRAME / MEDFLOW_OCR_ENGINE."""
    from tasks.deid.context import DeidContext
    from tasks.deid.keys import load_key
    from tasks.pixels.options import PixelOptions

    settings = load_settings(
        key_file=Path(key_file) if key_file else None,
        clean_pixels=clean_pixels,
        ocr_every_frame=ocr_every_frame,
        ocr_engine=ocr_engine,
    )
    env_key = settings.deid_key.get_secret_value() if settings.deid_key else None
    key = load_key(settings.key_file, env_key)
    return DeidContext.create(  # as `medflow deid` builds it
        key,
        clean_pixels=settings.clean_pixels,
        pixel_options=PixelOptions.from_settings(settings),
        max_pixel_bytes=settings.max_pixel_bytes,
    )


def summary_markdown(summary: IngestSummary) -> str:
    """The end-of-run artifact: counts, quarantine reasons, QC results, dataset path."""
    lines = [
        f"# Ingest {summary.run_id}",
        "",
        f"Dataset: `{summary.dataset}`",
        "",
        "| discovered | stored | skipped | quarantined | arrays written | manifest rows |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {summary.discovered} | {summary.stored} | {summary.skipped} | {summary.quarantined} "
        f"| {summary.arrays_written} | {summary.manifest_rows} |",
        "",
        f"Balanced: **{summary.balanced}** ({summary.line()})",
        "",
        "## Quarantined by reason",
        "",
    ]
    lines += [f"- `{k}`: {v}" for k, v in sorted(summary.quarantine_reasons.items())] or ["- none"]
    lines += [
        "",
        "## Quality checks (Great Expectations)",
        "",
        f"Rows failing: {summary.qc_failed_rows} of {summary.manifest_rows} "
        f"({summary.qc_failure_share:.1%}); limit exceeded: **{summary.qc_exceeded}**",
        "",
    ]
    lines += [f"- `{k}`: {v} rows" for k, v in sorted(summary.qc_by_expectation.items())] or ["- all passed"]
    if summary.qc_docs:
        lines += ["", f"Data Docs: `{summary.qc_docs}`"]
    if summary.audit_findings is not None:
        lines += [
            "",
            "## PHI audit (against the originals)",
            "",
            f"Findings: **{summary.audit_findings}** in {summary.audit_files_scanned} files scanned; "
            f"report `{summary.audit_report}` (places and attributes, never values)",
        ]
    return "\n".join(lines)


def _artifact_key(run_id: str) -> str:
    return "ingest-" + "".join(c if c.isalnum() else "-" for c in run_id.lower())


@flow(name="ingest", persist_result=False, validate_parameters=True)
def ingest(
    source: str,
    dataset: str,
    key_file: str | None = None,
    workers: int = 2,
    dask_address: str | None = None,
    clean_pixels: str | None = None,
    target_fps: float = 50.0,
    view_size: int = 112,
    max_failure_share: float = 0.25,
    run_id: str | None = None,
    audit: bool = True,
    audit_ocr: bool = False,
    ocr_every_frame: bool | None = None,
    ocr_engine: str | None = None,
) -> dict:
    """Turn the DICOM under ``source`` into the de-identified, checked dataset at ``dataset``.

    ``ocr_every_frame`` (paranoid mode) and ``ocr_engine`` choose how burned-in text is found; None leaves them to
    MEDFLOW_OCR_EVERY_FRAME / MEDFLOW_OCR_ENGINE.

    With ``audit`` (on by default, here and in ``medflow ingest``) the PHI audit searches the whole dataset for
    the originals' identifying values at the end (OCR of stored frames only with ``audit_ocr``); any finding
    fails the run. One run at a time per dataset (``DATASET/.lock``).
    """
    logger = get_run_logger()
    run_id = run_id or new_run_id()
    options = IngestOptions(
        target_fps=target_fps,
        view_size=view_size,
        qc=QcRules(max_failure_share=max_failure_share),
        file_timeout_s=load_settings().file_timeout_s,  # MEDFLOW_FILE_TIMEOUT_S
    )
    ocr = {"ocr_every_frame": ocr_every_frame, "ocr_engine": ocr_engine}
    build_context(key_file, clean_pixels, **ocr)  # fail fast on a missing/unsafe key or setting; tasks rebuild it
    with dataset_lock(Path(dataset)):
        try:
            summary = _run_batches(source, dataset, key_file, clean_pixels, options, run_id, workers, dask_address, ocr)
        finally:  # batch files list source paths: never leave them behind, even when a task failed
            shutil.rmtree(Path(dataset) / WORK_DIR / run_id, ignore_errors=True)
        if audit:
            _audit(source, dataset, summary, ocr=audit_ocr, key_file=key_file)
    logger.info("run %s: %s", run_id, summary.line())
    create_markdown_artifact(summary_markdown(summary), key=_artifact_key(run_id) + "-summary")
    create_table_artifact(
        table=[
            {"expectation": name, "failing_rows": count, "rows": summary.manifest_rows}
            for name, count in sorted(summary.qc_by_expectation.items())
        ]
        or [{"expectation": "all", "failing_rows": 0, "rows": summary.manifest_rows}],
        key=_artifact_key(run_id) + "-qc",
        description="Great Expectations: failing manifest rows per expectation",
    )
    if summary.audit_findings:
        raise MedflowError(
            f"PHI audit: {summary.audit_findings} identifying values found in the dataset "
            f"({summary.audit_files_scanned} files scanned); see {summary.audit_report}",
            reason=QuarantineReason.DEID_FAILED,
            step="audit",
        )
    payload = {k: v for k, v in summary.as_dict().items() if k != "qc_by_expectation"}
    emit_event(
        event=EVENT,
        resource={
            "prefect.resource.id": "medflow.dataset." + hashlib.sha256(str(dataset).encode()).hexdigest()[:16],
            "prefect.resource.name": Path(dataset).name,
        },
        payload=payload,
    )
    if summary.qc_exceeded:
        raise MedflowError(
            f"QC failed for {summary.qc_failure_share:.1%} of manifest rows (limit {max_failure_share:.0%}); "
            f"see {summary.qc_docs}",
            reason=QuarantineReason.QC_FAILED,
            step="qc",
        )
    return summary.as_dict()


def _run_batches(
    source: str,
    dataset: str,
    key_file: str | None,
    clean_pixels: str | None,
    options: IngestOptions,
    run_id: str,
    workers: int,
    dask_address: str | None,
    ocr: dict[str, Any],
) -> IngestSummary:
    """Plan, run the batch tasks (they tag the flow run with the modalities found), then manifest and QC."""
    logger = get_run_logger()
    local_workers = 0 if dask_address else workers
    with batch_pool(local_workers, run_id, file_timeout_s=options.file_timeout_s):  # workers start while planning
        planned = plan_task(source, dataset, options, run_id, workers)
        logger.info("run %s: %d batches", run_id, len(planned))
        common = {"dataset": dataset, "key_file": key_file, "clean_pixels": clean_pixels, "options": options, **ocr}
        counts = _submit_batches(planned, {**common, "run_id": run_id}, workers, dask_address)
    summary = IngestSummary(run_id=run_id, dataset=str(dataset))
    add_counts(summary, counts)
    return finalize_task(dataset, summary, options)


def _submit_batches(
    planned: list[tuple[str, list[str]]], common: dict[str, Any], workers: int, dask_address: str | None
) -> list[dict]:
    """One ``process-batch`` task per batch file (``common``: the parameters all batches share), named with its
    modalities; counts as they complete.

    The API calls that need not precede the work (tagging the flow run, creating the progress artifact) are made
    once the batches are submitted, while they run; progress updates are at most one per ``PROGRESS_EVERY``
    seconds (and the last), since each costs the server a write while the workers want the CPU.
    """
    counts: list[dict] = []
    with make_task_runner(workers, dask_address) as runner:
        futures = []
        for i, (batch_file, modalities) in enumerate(planned):
            params = {
                "batch_file": batch_file,
                "index": i,
                "modalities": "+".join(modalities) or "none",  # DICOM defined terms only
                **common,
            }
            futures.append(runner.submit(batch_task, params))
        tag_flow_run(modality_tags(sorted({m for _, modalities in planned for m in modalities})))
        progress_id = create_progress_artifact(
            0.0, key=_artifact_key(common["run_id"]), description="Ingest progress (batches)"
        )
        reported = time.monotonic()
        for future in as_completed(futures):
            counts.append(future.result())
            if len(counts) == len(futures) or time.monotonic() - reported >= PROGRESS_EVERY:
                update_progress_artifact(progress_id, 100.0 * len(counts) / max(len(futures), 1))
                reported = time.monotonic()
    return counts


def _audit(source: str, dataset: str, summary: IngestSummary, *, ocr: bool, key_file: str | None) -> None:
    """PHI audit of the dataset against the originals under ``source``; counts into ``summary``.

    FIFOs, sockets and devices under ``source`` are never opened by the audit (ingest quarantines them).
    """
    report = Path(dataset) / RUNS_DIR / f"{summary.run_id}-phi-audit.json"
    result = audit_task(
        dataset, source, report_path=str(report), ocr=ocr, key_file=key_file, run_id=summary.run_id
    )  # OCR: every array this run stored; the local Prefect database is searched as well
    summary.audit_findings = int(result["findings"])
    summary.audit_files_scanned = int(result["files_scanned"])
    summary.audit_report = str(Path(RUNS_DIR) / report.name)
    write_run_summary(Path(dataset), summary)
