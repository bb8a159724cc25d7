"""Worker processes that run lists of items under a per-item time limit, shared by ``ingest`` and ``deid``.

A call hands a function and its items to one idle worker process (``forkserver``: forked from a server that
imported ``preload`` once, safe under the caller's threads). The function reports the item(s) it starts and
each item's record through :class:`Progress`; the calling thread watches those messages. When one item runs
past ``item_timeout_s`` the worker is killed (SIGKILL: a decoder stuck in C never returns to Python), a fresh
worker takes its place, and the call goes on with the items that have no record yet, on the next worker; a
worker that dies by itself (a crashing decoder) is handled the same way. The caller learns which items timed
out or crashed and every record reported, so one stuck file costs one file, never its batch, and the pool
stays whole for the calls that follow.

Off-the-shelf pools time out whole tasks: ``concurrent.futures`` cannot stop a running task at all (and a
killed worker breaks the whole executor), ``pebble`` stops a task but cannot tell which file in it hung nor
resume the rest. Hence this small supervisor; the processes themselves are :mod:`multiprocessing`'s.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

START_METHOD = "forkserver"
_STOP = None


class WorkerDied(RuntimeError):
    """A worker process ended while no item was running (not attributable to an input)."""


class Progress:
    """What a function run by :meth:`WorkerPool.run_items` reports: the items it starts, each item's record."""

    def start(self, *indices: int) -> None:
        """Items ``indices`` (positions in the list the function received) are being worked on from now."""

    def done(self, index: int, record: Any = None) -> None:
        """Item ``index`` is finished; ``record`` (picklable, PHI-free) goes to the caller."""


@dataclass
class LocalProgress(Progress):
    """Collects records in this process (a run without worker processes: no time limit can be enforced)."""

    records: dict[int, Any] = field(default_factory=dict)

    def done(self, index: int, record: Any = None) -> None:
        self.records[index] = record


class _PipeProgress(Progress):
    def __init__(self, conn: Any):
        self.conn = conn

    def start(self, *indices: int) -> None:
        self.conn.send(("start", indices))

    def done(self, index: int, record: Any = None) -> None:
        self.conn.send(("done", index, record))


def _worker_main(conn: Any) -> None:
    """Loop of one worker process: receive (function, args, with progress), send back its return or exception."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller decides when a run stops
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is _STOP:
            return
        fn, args, kwargs, with_progress = message
        try:
            if with_progress:
                kwargs = {**kwargs, "progress": _PipeProgress(conn)}
            result = fn(*args, **kwargs)
        except Exception as exc:  # handed to the caller, which re-raises it
            _send_error(conn, exc)
            continue
        conn.send(("return", result))


def _send_error(conn: Any, exc: Exception) -> None:
    try:
        conn.send(("raise", exc))
    except Exception:  # an exception that does not pickle: its type only (its text may quote a value)
        conn.send(("raise", RuntimeError(f"{type(exc).__name__} in a worker process")))


@dataclass
class ItemsRun:
    """Outcome of :meth:`WorkerPool.run_items`: each attempt's return value, every record, stopped items."""

    results: list[Any] = field(default_factory=list)
    records: dict[int, Any] = field(default_factory=dict)
    timed_out: list[int] = field(default_factory=list)
    crashed: list[int] = field(default_factory=list)


class _Worker:
    def __init__(self, context: multiprocessing.context.BaseContext):
        parent, child = context.Pipe(duplex=True)
        self.process = context.Process(target=_worker_main, args=(child,), daemon=True, name="medflow-worker")
        self.process.start()
        child.close()
        self.conn = parent

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            with contextlib.suppress(OSError):
                self.conn.send(_STOP)
        self.process.join(timeout=None if kill else 10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class WorkerPool:
    """``workers`` processes, started in the background at creation; see the module docstring.

    ``item_timeout_s`` (None: no limit) bounds each item of :meth:`run_items`; :meth:`call` runs one function
    without a limit. Calls may come from several threads at once, one worker each.
    """

    def __init__(self, workers: int, *, preload: Sequence[str] = (), item_timeout_s: float | None = None):
        if workers < 1:
            raise ValueError("a WorkerPool needs at least one worker")
        self.workers = workers
        self.item_timeout_s = item_timeout_s
        self.context = multiprocessing.get_context(START_METHOD)
        if preload:
            self.context.set_forkserver_preload(list(preload))  # effective until the fork server first starts
        self.killed = 0
        self._idle: queue.Queue[_Worker | BaseException] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self.pid = os.getpid()
        self._starter = threading.Thread(target=self._start_all, name="medflow-worker-start", daemon=True)
        self._starter.start()  # the fork server imports ``preload`` while the caller plans its run

    @property
    def start_method(self) -> str:
        return self.context.get_start_method()

    def _start_all(self) -> None:
        for _ in range(self.workers):
            try:
                self._idle.put(self._new_worker())
            except BaseException as exc:  # surfaced to the first caller that waits for a worker
                self._idle.put(exc)
                return

    def _new_worker(self) -> _Worker:
        worker = _Worker(self.context)
        with self._lock:
            self._all.append(worker)
        return worker

    def _acquire(self) -> _Worker:
        got = self._idle.get()
        if isinstance(got, BaseException):
            self._idle.put(got)
            raise RuntimeError("worker processes could not be started") from got
        return got

    def _replace(self, worker: _Worker, *, kill: bool) -> None:
        worker.stop(kill=kill)
        with self._lock:
            self._all.remove(worker)
        self.killed += int(kill)
        self._idle.put(self._new_worker())

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker process (no time limit); its return value, or its exception."""
        worker = self._acquire()
        try:
            worker.conn.send((fn, args, kwargs, False))
            kind, *payload = worker.conn.recv()
        except (EOFError, OSError):
            self._replace(worker, kill=False)
            raise WorkerDied("a worker process died") from None
        self._idle.put(worker)
        if kind == "raise":
            raise payload[0]
        return payload[0]

    def run_items(self, fn: Callable[..., Any], items: Sequence[Any], *args: Any, **kwargs: Any) -> ItemsRun:
        """``fn(items, *args, progress=..., **kwargs)`` in a worker, under the per-item limit; see the module
        docstring. An item whose worker was stopped gets no record; its index is in ``timed_out``/``crashed``."""
        outcome = ItemsRun()
        pending = list(range(len(items)))
        while pending:
            positions = pending
            stopped, finished = self._attempt(fn, [items[i] for i in positions], args, kwargs, outcome, positions)
            if finished:
                return outcome
            pending = [i for i in positions if i not in outcome.records and i not in stopped]
        return outcome

    def _attempt(
        self,
        fn: Callable[..., Any],
        items: list[Any],
        args: tuple,
        kwargs: dict,
        outcome: ItemsRun,
        positions: list[int],
    ) -> tuple[set[int], bool]:
        """One worker on ``items``; (items stopped, whether the function returned)."""
        worker = self._acquire()
        current: tuple[int, ...] = ()
        started = 0.0
        try:
            worker.conn.send((fn, (items, *args), kwargs, True))
            while True:
                wait = None
                if current and self.item_timeout_s is not None:
                    wait = max(0.0, started + self.item_timeout_s - time.monotonic())
                if not worker.conn.poll(wait):  # the current item ran past the limit
                    stopped = [positions[i] for i in current]
                    outcome.timed_out += stopped
                    log.warning("%d item(s) over the %.0f s limit; worker stopped", len(stopped), self.item_timeout_s)
                    self._replace(worker, kill=True)
                    return set(stopped), False
                message = worker.conn.recv()
                if message[0] == "start":
                    current, started = message[1], time.monotonic()
                elif message[0] == "done":
                    outcome.records[positions[message[1]]] = message[2]
                    current = tuple(i for i in current if i != message[1])
                elif message[0] == "return":
                    outcome.results.append(message[1])
                    self._idle.put(worker)
                    return set(), True
                else:  # "raise"
                    self._idle.put(worker)
                    raise message[1]
        except (EOFError, OSError):  # the worker died by itself
            self._replace(worker, kill=False)
            if not current:
                raise WorkerDied("a worker process died outside any item") from None
            stopped = [positions[i] for i in current]
            outcome.crashed += stopped
            log.warning("worker process died during %d item(s); replaced", len(stopped))
            return set(stopped), False

    def whole(self) -> bool:
        """Open, in the process that made it, every worker started and idle: fit for another run."""
        if self._closed or self.pid != os.getpid() or self._starter.is_alive():
            return False
        with self._idle.mutex:
            idle = list(self._idle.queue)
        return len(idle) == self.workers and all(isinstance(w, _Worker) and w.process.is_alive() for w in idle)

    def close(self) -> None:
        """Stop every worker (idle ones finish; busy ones are killed)."""
        if self._closed:
            return
        self._closed = True
        self._starter.join()
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        idle: set[int] = set()
        while True:
            try:
                got = self._idle.get_nowait()
            except queue.Empty:
                break
            if isinstance(got, _Worker):
                idle.add(id(got))
        for worker in workers:
            worker.stop(kill=id(worker) not in idle)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Idle pools kept per process for the next run (each worker holds its imports and text detector).
MAX_IDLE_POOLS = 2
_IDLE: list[tuple[tuple, WorkerPool]] = []
_IDLE_LOCK = threading.Lock()


@contextlib.contextmanager
def warm_pool(
    workers: int, *, preload: Sequence[str] = (), item_timeout_s: float | None = None
) -> Iterator[WorkerPool]:
    """A :class:`WorkerPool` of ``workers``, reused from this process's idle ones when it can be.

    Loading a worker's libraries and text detector costs seconds; a process that runs one ingest or
    de-identification after another (``medflow listen`` ingesting each completed study, a notebook, the test
    suite) gets the previous run's workers back, already warm. A pool goes back idle only after a run that
    ended normally with every worker idle and alive; otherwise it is closed. At most :data:`MAX_IDLE_POOLS`
    stay idle (the oldest is closed); idle pools are closed when the process exits.
    """
    key = (workers, tuple(preload))
    pool = None
    with _IDLE_LOCK:
        for i, (k, _) in enumerate(_IDLE):
            if k == key:
                pool = _IDLE.pop(i)[1]
                break
    if pool is not None and not pool.whole():
        pool.close()
        pool = None
    if pool is None:
        pool = WorkerPool(workers, preload=preload, item_timeout_s=item_timeout_s)
    pool.item_timeout_s = item_timeout_s
    ended = False
    try:
        yield pool
        ended = True
    finally:
        if not (ended and pool.whole()):
            pool.close()
        else:
            with _IDLE_LOCK:
                _IDLE.append((key, pool))
                surplus = [p for _, p in _IDLE[:-MAX_IDLE_POOLS]]
                del _IDLE[:-MAX_IDLE_POOLS]
            for old in surplus:
                old.close()


@atexit.register
def close_idle_pools() -> None:
    """Close every idle pool of this process (at exit, or to release the workers' memory)."""
    with _IDLE_LOCK:
        pools = [p for _, p in _IDLE]
        _IDLE.clear()
    for pool in pools:
        if pool.pid == os.getpid():
            pool.close()
