"""Prefect flow ``ingest``: discover → batches by series → parallel batch tasks → manifest + QC → artifacts.

Thin by design: the work is in ``tasks.ingest``. Every place is a location name (``tasks.locations``: a configured
name or a handle), resolved to a path inside the flow and inside each task, so no path or file name is a flow or
task parameter, a result, an artifact, an event or a log line. Tasks receive location names, batch indices and
opaque run ids (never the key: each task rebuilds the de-identification context from the key file named by
``key_file`` or from the worker's MEDFLOW_KEY_FILE / MEDFLOW_DEID_KEY); they return counts. No arrays or PHI cross
Prefect, no task result is persisted, and a failure reaches Prefect only through :mod:`flows.redact`. The flow run
is tagged ``modality:<code>`` per modality found and batch task names carry their modalities (DICOM defined terms
only, never a raw header value; batch tasks carry no tags, whose concurrency leases cost seconds per run).
Locally, batch tasks run on threads (states, logs per batch) that hand the work to one process pool
per run (:mod:`tasks.ingest.pool`, the pool ``ingest_folder`` uses); ``--dask-address`` runs them on Dask (the
workers need the state directory, MEDFLOW_STATE_DIR, to resolve location names).
At the end the PHI audit (:mod:`tasks.audit`) searches the dataset for the originals' identifying values;
a finding fails the run.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated, Any

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
from pydantic import StringConstraints

from flows.redact import redacted_errors
from tasks.audit.task import audit_task
from tasks.config import load_settings
from tasks.errors import ConfigError, MedflowError, QuarantineReason
from tasks.ingest.finalize import RUNS_DIR, WORK_DIR, IngestSummary, add_counts, finalize_run, write_run_summary
from tasks.ingest.folder import new_run_id, prepare_run
from tasks.ingest.lock import dataset_lock
from tasks.ingest.options import IngestOptions
from tasks.ingest.pool import batch_pool, registered_pool, run_batch
from tasks.locations import LocationKind, LocationName, Locations, existing_folder
from tasks.qc.rules import QcRules

EVENT = "medflow.dataset.updated"
PROGRESS_EVERY = 2.0
"""Seconds between progress artifact updates."""
RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")]
"""An opaque run id (``new_run_id``), never a path or a file name."""


def batch_file(dataset: Path, run_id: str, index: int) -> Path:
    """Where :func:`tasks.ingest.discover.write_batches` put batch ``index`` of run ``run_id``."""
    return dataset / WORK_DIR / run_id / f"batch-{index:05d}.json"


def resolve_places(source: str, dataset: str, key_file: str | None) -> tuple[Path, Path, Path | None]:
    """Source folder (must exist), dataset and key file behind their location names, with this worker's settings."""
    locations = Locations.from_settings()
    return (
        existing_folder(locations, LocationKind.SOURCE, source),
        locations.path(LocationKind.DATASET, dataset, must_exist=False),
        locations.path(LocationKind.KEY, key_file, must_exist=False) if key_file else None,  # load_key says why
    )


@task(name="plan-batches", cache_policy=NO_CACHE, persist_result=False)
def plan_task(
    source: LocationName, dataset: LocationName, options: IngestOptions, run_id: RunId, workers: int
) -> list[list[str]]:
    """Discover inputs and write batch files into DATASET/.work/<run-id>; return each batch's modality codes."""
    with redacted_errors("plan-batches"):
        source_dir, dataset_dir, _ = resolve_places(source, dataset, None)
        planned = prepare_run(source_dir, dataset_dir, options, run_id, workers)
        for index, batch in enumerate(planned):
            if batch.path != batch_file(dataset_dir, run_id, index):
                raise ConfigError("batch files are not where the flow expects them (batch_file and write_batches)")
        return [list(b.modalities) for b in planned]


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
    index: int,
    modalities: str,
    dataset: LocationName,
    key_file: LocationName | None,
    clean_pixels: str | None,
    options: IngestOptions,
    run_id: RunId,
    ocr_every_frame: bool | None = None,
    ocr_engine: str | None = None,
) -> dict:
    """De-identify, normalise and store the inputs of batch ``index``; return counts.

    Locally the work runs in the run's process pool (:mod:`tasks.ingest.pool`) and this task thread waits for
    it; on a Dask worker (no pool registered there) it runs right here. The key never is a parameter: the
    context is rebuilt here from the key file named by ``key_file`` or the worker's settings. The batch's counts
    and (PHI-free) warnings go to this task's Prefect log.
    """
    logger = get_run_logger()
    with redacted_errors("process-batch"):
        locations = Locations.from_settings()
        dataset_dir = locations.path(LocationKind.DATASET, dataset)
        key_path = locations.path(LocationKind.KEY, key_file, must_exist=False) if key_file else None
        # per batch (ms): a long-lived Dask worker sees a rotated key
        ctx = build_context(key_path, clean_pixels, ocr_every_frame, ocr_engine)
        pool = registered_pool(run_id)  # None on a Dask worker: the batch runs here, without a time limit
        counts = run_batch(pool, batch_file(dataset_dir, run_id, index), dataset_dir, ctx, options, run_id)
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
def finalize_task(dataset: LocationName, summary: IngestSummary, options: IngestOptions) -> IngestSummary:
    """Update manifest.parquet, pool echo intensity, run the Great Expectations suites."""
    with redacted_errors("manifest-and-qc"):
        dataset_dir = Locations.from_settings().path(LocationKind.DATASET, dataset)
        summary = finalize_run(dataset_dir, summary, options)
        if summary.qc_docs:  # relative to the dataset: no path leaves the worker
            summary.qc_docs = str(Path(summary.qc_docs).relative_to(dataset_dir))
        return summary


@task(name="phi-audit", cache_policy=NO_CACHE, persist_result=False)
def phi_audit_task(
    dataset: LocationName, source: LocationName, run_id: RunId, ocr: bool, key_file: LocationName | None
) -> dict:
    """The PHI audit of the dataset against the originals (``tasks.audit``), places resolved here; counts only."""
    with redacted_errors("phi-audit"):
        source_dir, dataset_dir, key_path = resolve_places(source, dataset, key_file)
        report = dataset_dir / RUNS_DIR / f"{run_id}-phi-audit.json"
        return audit_task.fn(
            str(dataset_dir),
            str(source_dir),
            report_path=str(report),
            ocr=ocr,
            key_file=str(key_path) if key_path else None,
            run_id=run_id,
        )


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
    key_file: Path | None, clean_pixels: str | None, ocr_every_frame: bool | None = None, ocr_engine: str | None = None
) -> Any:
    """The de-identification context from ``key_file`` or the settings' key (never a flow parameter); the OCR
    options, when None, come from MEDFLOW_OCR_EVERY_FRAME / MEDFLOW_OCR_ENGINE."""
    from tasks.deid.context import DeidContext
    from tasks.deid.keys import load_key
    from tasks.pixels.options import PixelOptions

    settings = load_settings(
        key_file=key_file, clean_pixels=clean_pixels, ocr_every_frame=ocr_every_frame, ocr_engine=ocr_engine
    )
    return DeidContext.create(  # as `medflow deid` builds it
        load_key(settings=settings),
        clean_pixels=settings.clean_pixels,
        pixel_options=PixelOptions.from_settings(settings),
        max_pixel_bytes=settings.max_pixel_bytes,
    )


def summary_markdown(summary: IngestSummary) -> str:
    """The end-of-run artifact: counts, quarantine reasons, QC results, the dataset's location name."""
    lines = [
        f"# Ingest {summary.run_id}",
        "",
        f"Dataset: `{summary.dataset}` (location name)",
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
        lines += ["", f"Data Docs: `{summary.qc_docs}` in the dataset"]
    if summary.audit_findings is not None:
        lines += [
            "",
            "## PHI audit (against the originals)",
            "",
            f"Findings: **{summary.audit_findings}** in {summary.audit_files_scanned} files scanned; "
            f"report `{summary.audit_report}` in the dataset (places and attributes, never values)",
        ]
    return "\n".join(lines)


def _artifact_key(run_id: str) -> str:
    return "ingest-" + "".join(c if c.isalnum() else "-" for c in run_id.lower())


@flow(name="ingest", persist_result=False, validate_parameters=True)
def ingest(
    source: LocationName,
    dataset: LocationName,
    key_file: LocationName | None = None,
    workers: int = 2,
    dask_address: str | None = None,
    clean_pixels: str | None = None,
    target_fps: float = 50.0,
    view_size: int = 112,
    max_failure_share: float = 0.25,
    run_id: RunId | None = None,
    audit: bool = True,
    audit_ocr: bool = False,
    ocr_every_frame: bool | None = None,
    ocr_engine: str | None = None,
    keep_deid: bool = False,
) -> dict:
    """Turn the DICOM of source ``source`` into the de-identified, checked dataset ``dataset``.

    ``source``, ``dataset`` and ``key_file`` are location names (:mod:`tasks.locations`): a configured source or
    location, or a handle ``medflow ingest`` registered; an unknown source or a missing source folder fails the
    run before anything is written. ``key_file`` None: the worker's MEDFLOW_KEY_FILE / MEDFLOW_DEID_KEY.
    ``ocr_every_frame`` (paranoid mode) and ``ocr_engine`` choose how burned-in text is found; None leaves them to
    MEDFLOW_OCR_EVERY_FRAME / MEDFLOW_OCR_ENGINE.

    With ``audit`` (on by default, here and in ``medflow ingest``) the PHI audit searches the whole dataset for
    the originals' identifying values at the end (OCR of stored frames only with ``audit_ocr``); any finding
    fails the run. One run at a time per dataset (``DATASET/.lock``).
    """
    logger = get_run_logger()
    with redacted_errors("ingest"):
        run_id = run_id or new_run_id()
        options = IngestOptions(
            target_fps=target_fps,
            view_size=view_size,
            qc=QcRules(max_failure_share=max_failure_share),
            file_timeout_s=load_settings().file_timeout_s,  # MEDFLOW_FILE_TIMEOUT_S
            keep_deid=keep_deid,
        )
        ocr = {"ocr_every_frame": ocr_every_frame, "ocr_engine": ocr_engine}
        _, dataset_dir, key_path = resolve_places(source, dataset, key_file)  # fails on an unknown or missing source
        build_context(key_path, clean_pixels, **ocr)  # fail fast on a missing/unsafe key or setting
        names = {"source": source, "dataset": dataset, "key_file": key_file}
        with dataset_lock(dataset_dir):
            try:
                summary = _run_batches(names, clean_pixels, options, run_id, workers, dask_address, ocr)
            finally:  # batch files list source paths: never leave them behind, even when a task failed
                shutil.rmtree(dataset_dir / WORK_DIR / run_id, ignore_errors=True)
            if audit:
                _audit(names, dataset_dir, summary, ocr=audit_ocr)
        logger.info("run %s: %s", run_id, summary.line())
        _publish(summary, dataset, max_failure_share)
        return summary.as_dict()


def _publish(summary: IngestSummary, dataset: str, max_failure_share: float) -> None:
    """Artifacts, then the verdict: a PHI finding fails the run; else the event, then QC may fail it."""
    create_markdown_artifact(summary_markdown(summary), key=_artifact_key(summary.run_id) + "-summary")
    create_table_artifact(
        table=[
            {"expectation": name, "failing_rows": count, "rows": summary.manifest_rows}
            for name, count in sorted(summary.qc_by_expectation.items())
        ]
        or [{"expectation": "all", "failing_rows": 0, "rows": summary.manifest_rows}],
        key=_artifact_key(summary.run_id) + "-qc",
        description="Great Expectations: failing manifest rows per expectation",
    )
    if summary.audit_findings:
        raise MedflowError(
            f"PHI audit: {summary.audit_findings} identifying values found in the dataset "
            f"({summary.audit_files_scanned} files scanned); see {summary.audit_report} in the dataset",
            reason=QuarantineReason.DEID_FAILED,
            step="audit",
        )
    payload = {k: v for k, v in summary.as_dict().items() if k != "qc_by_expectation"}
    emit_event(
        event=EVENT,
        resource={"prefect.resource.id": f"medflow.dataset.{dataset}", "prefect.resource.name": dataset},
        payload=payload,
    )
    if summary.qc_exceeded:
        raise MedflowError(
            f"QC failed for {summary.qc_failure_share:.1%} of manifest rows (limit {max_failure_share:.0%}); "
            f"see {summary.qc_docs} in the dataset",
            reason=QuarantineReason.QC_FAILED,
            step="qc",
        )


def _run_batches(
    names: dict[str, str | None],
    clean_pixels: str | None,
    options: IngestOptions,
    run_id: str,
    workers: int,
    dask_address: str | None,
    ocr: dict[str, Any],
) -> IngestSummary:
    """Plan, run the batch tasks (they tag the flow run with the modalities found), then manifest and QC."""
    logger = get_run_logger()
    dataset = str(names["dataset"])
    local_workers = 0 if dask_address else workers
    with batch_pool(local_workers, run_id, file_timeout_s=options.file_timeout_s):  # workers start while planning
        planned = plan_task(str(names["source"]), dataset, options, run_id, workers)
        logger.info("run %s: %d batches", run_id, len(planned))
        common = {
            "dataset": dataset,
            "key_file": names["key_file"],
            "clean_pixels": clean_pixels,
            "options": options,
            **ocr,
        }
        counts = _submit_batches(planned, {**common, "run_id": run_id}, workers, dask_address)
    summary = IngestSummary(run_id=run_id, dataset=dataset)
    add_counts(summary, counts)
    return finalize_task(dataset, summary, options)


def _submit_batches(
    planned: list[list[str]], common: dict[str, Any], workers: int, dask_address: str | None
) -> list[dict]:
    """One ``process-batch`` task per batch (``common``: the parameters all batches share), named with its
    modalities; counts as they complete.

    The API calls that need not precede the work (tagging the flow run, creating the progress artifact) are made
    once the batches are submitted, while they run; progress updates are at most one per ``PROGRESS_EVERY``
    seconds (and the last), since each costs the server a write while the workers want the CPU.
    """
    counts: list[dict] = []
    with make_task_runner(workers, dask_address) as runner:
        futures = []
        for i, modalities in enumerate(planned):
            params = {"index": i, "modalities": "+".join(modalities) or "none", **common}  # DICOM defined terms only
            futures.append(runner.submit(batch_task, params))
        tag_flow_run(modality_tags(sorted({m for modalities in planned for m in modalities})))
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


def _audit(names: dict[str, str | None], dataset_dir: Path, summary: IngestSummary, *, ocr: bool) -> None:
    """PHI audit of the dataset against the originals of the source; counts into ``summary``.

    FIFOs, sockets and devices under the source are never opened by the audit (ingest quarantines them).
    """
    # OCR: every array this run stored; the local Prefect database is searched as well
    result = phi_audit_task(str(names["dataset"]), str(names["source"]), summary.run_id, ocr, names["key_file"])
    summary.audit_findings = int(result["findings"])
    summary.audit_files_scanned = int(result["files_scanned"])
    summary.audit_report = str(Path(RUNS_DIR) / f"{summary.run_id}-phi-audit.json")
    write_run_summary(dataset_dir, summary)
