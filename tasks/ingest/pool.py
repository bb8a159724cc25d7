"""The process pool that runs ingest batches, shared by ``ingest_folder`` and the Prefect flow.

Workers fork from a ``forkserver`` that imported the batch code (pydicom, numpy, zarr, codecs; never
Prefect) once and runs nothing else: forking it is cheap, and safe even when the caller runs Prefect's or
rich's threads (plain ``fork`` of such a process is not), and no worker pays for imports (a spawned one
does: 1–2 s each under Prefect's ProcessPoolTaskRunner here).

Worker processes do not share the caller's logging (a Prefect task log in particular), so
:func:`run_batch` returns the batch's (PHI-free) warnings with its counts for the caller to log.
The flow looks its run's pool up with :func:`registered_pool` (a pool is never a task parameter).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks.ingest.options import IngestOptions
from tasks.ingest.process import process_batch

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

_POOLS: dict[str, ProcessPoolExecutor] = {}
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


def run_batch(batch_file: Path, dataset: Path, ctx: Any, options: IngestOptions, run_id: str) -> dict:
    """:func:`tasks.ingest.process.process_batch` plus ``warnings``: the batch's log warnings (PHI-free by
    the project's logging rule), for the caller to log where its own log goes."""
    with collect_warnings() as warnings:
        counts = process_batch(Path(batch_file), Path(dataset), ctx, options, run_id)
    return {**counts, "warnings": warnings}


def _ready() -> None:
    """No-op submitted once per worker so the pool starts while the caller plans the run."""


def _context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))  # effective until the (per-process) fork server first starts
    return ctx


@contextmanager
def batch_pool(workers: int, run_id: str | None = None) -> Iterator[ProcessPoolExecutor | None]:
    """A pool of ``workers`` processes, already starting; None when ``workers`` <= 1 (run in the caller).

    With ``run_id`` the pool is registered for :func:`registered_pool` while the context is open.
    """
    if workers <= 1:
        yield None
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context())
    for _ in range(workers):  # each submit starts one worker: the fork server imports while the caller plans
        pool.submit(_ready)
    if run_id is not None:
        with _POOLS_LOCK:
            _POOLS[run_id] = pool
    try:
        yield pool
    finally:
        if run_id is not None:
            with _POOLS_LOCK:
                _POOLS.pop(run_id, None)
        pool.shutdown(wait=True, cancel_futures=True)


def registered_pool(run_id: str) -> ProcessPoolExecutor | None:
    """The pool :func:`batch_pool` registered for ``run_id`` in this process (None: none, e.g. on Dask)."""
    with _POOLS_LOCK:
        return _POOLS.get(run_id)
