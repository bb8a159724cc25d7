"""The worker processes that run ingest batches, shared by ``ingest_folder`` and the Prefect flow.

A :class:`tasks.workers.WorkerPool`: ``forkserver`` workers forked from a server that imported the batch code
(pydicom, numpy, zarr, codecs; never Prefect) once, so forking is cheap and safe under Prefect's or rich's
threads, and no worker pays for imports. Each file of a batch runs under the per-file time limit
(``IngestOptions.file_timeout_s``, from ``MEDFLOW_FILE_TIMEOUT_S``): a file past it has its worker killed and
replaced, is quarantined as ``timeout`` and the batch goes on with its other files; a worker that dies by
itself costs its file (``worker-crashed``) in the same way.

Worker processes do not share the caller's logging (a Prefect task log in particular), so
:func:`run_batch` returns the batch's (PHI-free) warnings with its counts for the caller to log.
The flow looks its run's pool up with :func:`registered_pool` (a pool is never a task parameter). Without a
pool (on Dask) the batch runs in the calling process, where no time limit can be enforced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks.errors import QuarantineReason
from tasks.ingest.discover import read_batch
from tasks.ingest.options import IngestOptions
from tasks.ingest.process import BatchCounts, process_paths, record_stopped
from tasks.workers import LocalProgress, WorkerPool, warm_pool

# imported once by the fork server; '__main__' first so workers do not re-run the main module each
PRELOAD = (
    "__main__",
    "tasks.ingest.process",
    "tasks.deid.instance",
    "tasks.deid.reader",
    "tasks.deid.context",
    "numpy.ma",
)
MAX_WARNINGS = 50  # per batch: enough to see what went wrong, bounded in size

_POOLS: dict[str, WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


class _Collect(logging.Handler):
    """Keeps WARNING+ records of ``tasks.*`` loggers emitted by one thread."""

    def __init__(self, thread: int):
        super().__init__(logging.WARNING)
        self.thread, self.messages, self.dropped = thread, [], 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        if len(self.messages) < MAX_WARNINGS:
            self.messages.append(f"{record.name}: {record.getMessage()}")
        else:
            self.dropped += 1


@contextmanager
def collect_warnings() -> Iterator[list[str]]:
    """The WARNING+ messages that ``tasks.*`` loggers emit in this thread inside the block (at most
    :data:`MAX_WARNINGS`, then a count), as ``"<logger>: <message>"``."""
    collect = _Collect(threading.get_ident())
    logger = logging.getLogger("tasks")
    logger.addHandler(collect)
    messages: list[str] = []
    try:
        yield messages
    finally:
        logger.removeHandler(collect)
        messages += collect.messages
        if collect.dropped:
            messages.append(f"{collect.dropped} more warnings not shown")


def work(paths: list[str], dataset: Path, ctx: Any, options: IngestOptions, run_id: str, *, progress: Any) -> list[str]:
    """Worker side: :func:`tasks.ingest.process.process_paths`; returns the batch's log warnings (PHI-free by
    the project's logging rule)."""
    with collect_warnings() as warnings:
        process_paths(paths, Path(dataset), ctx, options, run_id, progress=progress)
    return warnings


def run_batch(
    pool: WorkerPool | None, batch_file: Path, dataset: Path, ctx: Any, options: IngestOptions, run_id: str
) -> dict:
    """Process the inputs listed in ``batch_file`` in ``pool`` (None: in this process); JSON-safe counts plus
    ``warnings``. Inputs whose worker was stopped are quarantined here (``timeout``, ``worker-crashed``)."""
    started = time.perf_counter()
    dataset = Path(dataset)
    paths = [str(p) for p in read_batch(Path(batch_file))]
    stopped: list[tuple[int, QuarantineReason]] = []
    if pool is None:
        progress = LocalProgress()
        warnings = work(paths, dataset, ctx, options, run_id, progress=progress)
        records = progress.records
    else:
        run = pool.run_items(work, paths, dataset, ctx, options, run_id)
        records = run.records
        warnings = [w for result in run.results for w in result]
        stopped = [(i, QuarantineReason.TIMEOUT) for i in run.timed_out]
        stopped += [(i, QuarantineReason.WORKER_CRASHED) for i in run.crashed]
    for index, reason in stopped:
        records[index] = record_stopped(dataset, ctx.pseudonymizer.source_id(Path(paths[index])), run_id, reason)
        warnings.append(f"{__name__}: input {index} of the batch quarantined as {reason}")
    counts = BatchCounts.from_records([records[i] for i in range(len(paths)) if i in records])
    counts.seconds = time.perf_counter() - started
    return {**counts.as_dict(), "warnings": warnings}


@contextmanager
def batch_pool(
    workers: int, run_id: str | None = None, *, file_timeout_s: float | None = None
) -> Iterator[WorkerPool | None]:
    """A pool of ``workers`` processes with the per-file limit (this process's previous run's, still warm, or
    new and already starting: :func:`tasks.workers.warm_pool`); None when ``workers`` < 1 (batches then run in
    the caller, without a time limit).

    With ``run_id`` the pool is registered for :func:`registered_pool` while the context is open.
    """
    if workers < 1:
        yield None
        return
    with warm_pool(workers, preload=PRELOAD, item_timeout_s=file_timeout_s) as pool:
        if run_id is not None:
            with _POOLS_LOCK:
                _POOLS[run_id] = pool
        try:
            yield pool
        finally:
            if run_id is not None:
                with _POOLS_LOCK:
                    _POOLS.pop(run_id, None)


def registered_pool(run_id: str) -> WorkerPool | None:
    """The pool :func:`batch_pool` registered for ``run_id`` in this process (None: none, e.g. on Dask)."""
    with _POOLS_LOCK:
        return _POOLS.get(run_id)
