"""``medflow deid``: de-identify every file under a folder into ``<patient>/<study>/<series>/<instance>.dcm``.

- Any file name is considered (with or without ``.dcm``); SOURCE is only read, never written.
- Outputs appear atomically (temporary file + rename); temporaries of an interrupted run are removed.
- A re-run with the same key skips inputs whose ledger row says written and whose output exists.
- ``OUTPUT/deid-inputs.jsonl`` (the ledger): one line per input with a keyed hash of its path, the output path,
  status and action counts; ``OUTPUT/quarantine.jsonl``: inputs not released, with the reason. No PHI.
- With one or more workers, files run in :class:`tasks.workers.WorkerPool` processes under the per-file
  time limit: a file past it has its worker killed and replaced and is quarantined as ``timeout``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmwrite

from tasks.atomic import TEMP_PREFIX, append_jsonl, check_writable, remove_stale_temporaries
from tasks.deid.context import DeidContext
from tasks.deid.instance import DeidentifiedInstance, deidentify_instance
from tasks.deid.reader import read_dicom
from tasks.discovery import check_source, discover
from tasks.errors import ConfigError, MedflowError, QuarantineReason, StorageError
from tasks.quarantine import QuarantineRecord, quarantine
from tasks.workers import Progress, WorkerPool, warm_pool

log = logging.getLogger(__name__)

INPUTS_FILE = "deid-inputs.jsonl"
LEGACY_INPUTS_FILE = "deid-audit.jsonl"  # its name before 2026-12; still read, so re-runs skip what is done
DONE_STATUSES = ("written", "skipped", "duplicate")
#: imported once by the fork server of the worker pool
PRELOAD = ("__main__", "tasks.deid.folder", "tasks.deid.instance", "tasks.deid.reader", "tasks.deid.context")


@dataclass
class RunSummary:
    """Counts of one run (JSON-safe, no PHI)."""

    files: int = 0
    written: int = 0
    skipped: int = 0
    duplicates: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    actions: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    output: str = ""

    def add(self, status: str, actions: dict[str, int], reason: str | None) -> None:
        name = {"duplicate": "duplicates"}.get(status, status)
        setattr(self, name, getattr(self, name) + 1)
        self.actions = dict(Counter(self.actions) + Counter(actions))
        if reason:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


def write_instance(result: DeidentifiedInstance, path: Path) -> None:
    """Write the de-identified dataset as a Part 10 file: temporary file in the same folder, then rename.

    The rename makes the file appear whole or not at all when a run is interrupted. There is no fsync
    per file (it costs more than the de-identification itself); after a power loss a file can be
    empty, and :func:`finished_sources` redoes outputs that are shorter than a DICOM preamble.
    """
    tmp = path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            dcmwrite(fh, result.dataset, enforce_file_format=True)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise StorageError("cannot write the output file; check free space and permissions") from None
    except Exception:
        tmp.unlink(missing_ok=True)
        raise StorageError(
            "the de-identified dataset cannot be encoded", reason=QuarantineReason.ENCODE_FAILED
        ) from None


def process_file(path: Path, relname: str, output: Path, ctx: DeidContext) -> tuple[str, dict[str, int], str | None]:
    """De-identify one file; write its ledger and quarantine rows; return (status, action counts, reason)."""
    source_id = ctx.pseudonymizer.source_id(relname)
    relpath, actions, reason, cleaned = None, {}, None, False
    try:
        ds = read_dicom(path, max_pixel_bytes=ctx.max_pixel_bytes)
        result = deidentify_instance(ds, ctx)
        relpath, actions, cleaned = result.relpath, result.action_counts, result.pixel_report is not None
        target = output / result.relpath
        if target.exists():
            status = "duplicate"
        else:
            write_instance(result, target)
            status = "written"
    except MedflowError as error:
        status, reason = "quarantined", str(error.reason)
        quarantine(output, QuarantineRecord.from_error(source_id, error))
    except Exception as error:  # a malformed object can fail anywhere in pydicom; never a crash, never its text
        status, reason = "quarantined", str(QuarantineReason.DEID_FAILED)
        detail = f"unexpected {type(error).__name__} while de-identifying"
        quarantine(
            output,
            QuarantineRecord(source_id=source_id, step="deid", reason=QuarantineReason.DEID_FAILED, detail=detail),
        )
    _ledger_row(output, source_id, relpath, status, actions, reason, cleaned)
    return status, actions, reason


def _ledger_row(
    output: Path, source_id: str, relpath: str | None, status: str, actions: dict, reason: str | None, cleaned: bool
) -> None:
    row = {
        "source_id": source_id,
        "output": relpath,
        "status": status,
        "actions": actions,
        "reason": reason,
        "pixels_cleaned": cleaned,
        "time": time.time(),
    }
    append_jsonl(output / INPUTS_FILE, row)


def process_items(items: list[tuple[str, str]], output: str, ctx: DeidContext, *, progress: Progress) -> None:
    """Worker side: de-identify ``(path, relative name)`` pairs, reporting each start and result to ``progress``."""
    for index, (path, rel) in enumerate(items):
        progress.start(index)
        progress.done(index, process_file(Path(path), rel, Path(output), ctx))


def record_stopped(rel: str, output: Path, ctx: DeidContext, reason: QuarantineReason) -> tuple[str, dict, str]:
    """Quarantine a file whose worker was stopped (``timeout``) or died (``worker-crashed``); the worker cannot."""
    source_id = ctx.pseudonymizer.source_id(rel)
    detail = {
        QuarantineReason.TIMEOUT: "de-identification ran past the per-file time limit (MEDFLOW_FILE_TIMEOUT_S); "
        "its worker process was stopped",
        QuarantineReason.WORKER_CRASHED: "the worker process died while de-identifying this file",
    }[reason]
    quarantine(output, QuarantineRecord(source_id=source_id, step="deid", reason=reason, detail=detail))
    _ledger_row(output, source_id, None, "quarantined", {}, str(reason), False)
    return "quarantined", {}, str(reason)


def _run_batch(
    pool: WorkerPool, batch: list[tuple[str, str]], output: Path, ctx: DeidContext
) -> list[tuple[str, dict[str, int], str | None]]:
    run = pool.run_items(process_items, batch, str(output), ctx)
    for index in run.timed_out:
        run.records[index] = record_stopped(batch[index][1], output, ctx, QuarantineReason.TIMEOUT)
    for index in run.crashed:
        run.records[index] = record_stopped(batch[index][1], output, ctx, QuarantineReason.WORKER_CRASHED)
    return [run.records[i] for i in range(len(batch)) if i in run.records]


def _complete(path: Path) -> bool:
    try:
        return path.stat().st_size > 132
    except OSError:
        return False


def finished_sources(output: Path) -> set[str]:
    """Source ids whose ledger row says done and whose output file still exists (for idempotent re-runs)."""
    done: set[str] = set()
    for ledger in (output / LEGACY_INPUTS_FILE, output / INPUTS_FILE):
        if not ledger.exists():
            continue
        with ledger.open() as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash
                target = output / row["output"] if row.get("output") else None
                if row.get("status") in DONE_STATUSES and target is not None and _complete(target):
                    done.add(row["source_id"])
    return done


def deidentify_folder(
    source: Path,
    output: Path,
    ctx: DeidContext,
    workers: int = 1,
    progress: bool = True,
    file_timeout_s: float | None = None,
) -> RunSummary:
    """De-identify every file under ``source`` into ``output``; see the module docstring.

    ``workers`` processes (0: in this process, where no time limit can be enforced) with a limit of
    ``file_timeout_s`` seconds per file (None: none).
    """
    source, output = check_source(Path(source)).resolve(), Path(output).resolve()
    if not source.is_dir():
        raise ConfigError("SOURCE is not a folder; pass the folder that holds the DICOM files")
    if output == source or source.is_relative_to(output):
        raise ConfigError("OUTPUT must not be SOURCE or contain it; choose a separate output folder")
    check_writable(output, "OUTPUT")
    stale = remove_stale_temporaries(output)
    if stale:
        log.info("removed %d temporaries of an interrupted run", stale)
    started = time.perf_counter()
    summary = RunSummary(output=str(output))
    ctx = ctx.with_layout_file(output / "pixel-layouts.json")  # tasks.pixels.layout.LAYOUT_FILE: next run warm
    done = finished_sources(output)
    pending: list[tuple[str, str]] = []
    for path in discover(source, exclude=output if output.is_relative_to(source) else None):
        summary.files += 1
        rel = path.relative_to(source).as_posix()
        if ctx.pseudonymizer.source_id(rel) in done:
            summary.skipped += 1
        else:
            pending.append((str(path), rel))

    bar = _progress(progress, len(pending))
    task = bar.add_task("de-identifying", total=len(pending)) if bar else None
    if bar:
        bar.start()
    try:
        for status, actions, reason in _run(pending, output, ctx, workers, file_timeout_s, bar, task):
            summary.add(status, actions, reason)
    finally:
        if bar:
            bar.stop()
    summary.seconds = round(time.perf_counter() - started, 3)
    log.info(
        "deid: %d files, %d written, %d skipped, %d quarantined in %.1fs",
        summary.files,
        summary.written,
        summary.skipped,
        summary.quarantined,
        summary.seconds,
    )
    return summary


def _run(
    pending, output: Path, ctx: DeidContext, workers: int, file_timeout_s: float | None, bar, task
) -> Iterator[tuple[str, dict[str, int], str | None]]:
    if workers < 1 or not pending:
        for p, rel in pending:
            yield process_file(Path(p), rel, output, ctx)
            if bar:
                bar.advance(task)
        return
    size = max(1, min(64, len(pending) // (workers * 4) or 1))
    batches = [pending[i : i + size] for i in range(0, len(pending), size)]
    with (
        warm_pool(workers, preload=PRELOAD, item_timeout_s=file_timeout_s) as pool,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deid-batch") as drivers,
    ):
        futures = {drivers.submit(_run_batch, pool, batch, output, ctx): len(batch) for batch in batches}
        for future in as_completed(futures):
            yield from future.result()
            if bar:
                bar.advance(task, futures[future])


def _progress(enabled: bool, total: int):
    if not enabled or total == 0:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
    )
