"""``ingest_folder``: the whole ingest in plain Python (a local process pool), as the flow does it with tasks."""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import NamedTuple

from tasks.atomic import atomic_write_bytes, remove_stale_temporaries
from tasks.discovery import check_source
from tasks.ingest.discover import discover_files, plan_batches, write_batches
from tasks.ingest.finalize import WORK_DIR, IngestSummary, add_counts, finalize_run
from tasks.ingest.lock import dataset_lock
from tasks.ingest.options import IngestOptions
from tasks.ingest.pool import batch_pool, run_batch
from tasks.store.zarr_store import clear_staging, ensure_root
from tasks.workers import WorkerPool

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def clear_interrupted(dataset: Path, run_id: str) -> int:
    """Remove what interrupted runs left: ``.work`` folders of other runs (their batch files list source
    paths, which are PHI), ``.staging`` arrays and temporary files. Call only under :func:`dataset_lock`."""
    removed = clear_staging(dataset) + remove_stale_temporaries(dataset)
    work = dataset / WORK_DIR
    if work.is_dir():
        for stale in work.iterdir():
            if stale.name == run_id:
                continue
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
            removed += 1
    return removed


class PlannedBatch(NamedTuple):
    """A batch file and the modality codes of its inputs (for task tags; never a header value)."""

    path: Path
    modalities: tuple[str, ...]


def prepare_run(source: Path, dataset: Path, options: IngestOptions, run_id: str, workers: int) -> list[PlannedBatch]:
    """Create the store, clear leftovers of interrupted runs, plan batches; return batch file paths.

    The caller holds :func:`tasks.ingest.lock.dataset_lock` (no other ingest runs into ``dataset``).
    """
    dataset = Path(dataset)
    check_source(Path(source))  # one clear error before anything is written
    ensure_root(dataset)
    cleared = clear_interrupted(dataset, run_id)
    if cleared:
        log.info("removed %d leftovers of an interrupted run", cleared)
    files = discover_files(Path(source))
    modalities: dict[str, str] = {}
    batches = plan_batches(
        files,
        batch_bytes=options.batch_bytes,
        batch_files=options.batch_files,
        min_batches=4 * max(workers, 1),
        modalities=modalities,
    )
    work = dataset / WORK_DIR / run_id
    paths = write_batches(work, batches)
    atomic_write_bytes(work / PLAN_FILE, json.dumps({"files": len(files), "batches": len(paths)}).encode())
    return [
        PlannedBatch(path, tuple(sorted({modalities[p] for p in batch})))
        for path, batch in zip(paths, batches, strict=True)
    ]


def run_plan(dataset: Path, run_id: str) -> dict | None:
    """The plan of a running ingest (files and batches), for progress displays; None before it exists."""
    path = Path(dataset) / WORK_DIR / run_id / PLAN_FILE
    return json.loads(path.read_text()) if path.exists() else None


def ingest_folder(
    source: Path,
    dataset: Path,
    ctx: object,
    options: IngestOptions | None = None,
    *,
    workers: int = 2,
    run_id: str | None = None,
    on_batch: Callable[[int, int, dict], None] | None = None,
) -> IngestSummary:
    """Ingest ``source`` into ``dataset`` with ``workers`` processes (0 = in this process, without the per-file
    time limit).

    The pool (:mod:`tasks.ingest.pool`) is the one the Prefect flow uses, so the two differ by Prefect alone.
    """
    options = options or IngestOptions()
    run_id = run_id or new_run_id()
    started = time.perf_counter()
    pool_context = batch_pool(workers, file_timeout_s=options.file_timeout_s)
    with dataset_lock(Path(dataset)), pool_context as pool:  # workers start while the run is planned
        try:
            batch_files = [b.path for b in prepare_run(source, dataset, options, run_id, workers)]
            summary = IngestSummary(run_id=run_id, dataset=str(dataset))
            counts = list(_run_batches(batch_files, Path(dataset), ctx, options, run_id, pool, on_batch))
            add_counts(summary, counts)
            summary = finalize_run(Path(dataset), summary, options)
        finally:  # batch files list source paths: never leave them behind
            shutil.rmtree(Path(dataset) / WORK_DIR / run_id, ignore_errors=True)
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _run_batches(
    batch_files: list[Path],
    dataset: Path,
    ctx: object,
    options: IngestOptions,
    run_id: str,
    pool: WorkerPool | None,
    on_batch: Callable[[int, int, dict], None] | None,
) -> Iterable[dict]:
    """Counts of each batch as it finishes; one driver thread per worker waits on the pool."""
    total = len(batch_files)
    if pool is None:
        done: Iterable[dict] = (run_batch(None, b, dataset, ctx, options, run_id) for b in batch_files)
        yield from _reported(done, total, on_batch)
        return
    with ThreadPoolExecutor(max_workers=pool.workers, thread_name_prefix="ingest-batch") as drivers:
        futures = [drivers.submit(run_batch, pool, b, dataset, ctx, options, run_id) for b in batch_files]
        yield from _reported((future.result() for future in as_completed(futures)), total, on_batch)


def _reported(done: Iterable[dict], total: int, on_batch: Callable[[int, int, dict], None] | None) -> Iterable[dict]:
    for i, counts in enumerate(done):
        for warning in counts.pop("warnings", []):  # a worker's log does not reach this process's handlers
            log.warning("batch: %s", warning)
        if on_batch:
            on_batch(i + 1, total, counts)
        yield counts
