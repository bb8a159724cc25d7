"""Crash-safe file output: write to a hidden temporary name in the same folder, then rename."""

from __future__ import annotations

import json
import os
import random
import secrets
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from tasks.errors import StorageError

TEMP_PREFIX = ".medflow-tmp-"
_NAMES = random.Random(secrets.randbits(128))
"""Temporary names only need to differ (they are created with O_EXCL in owner-only folders); ``secrets`` asks the
kernel for bytes on every call (one system call per instance written). Reseeded in a forked child."""
os.register_at_fork(after_in_child=lambda: _NAMES.seed(secrets.randbits(128)))


def temporary_path(folder: Path) -> Path:
    """A fresh temporary name in ``folder`` (:data:`TEMP_PREFIX`; create it with ``O_EXCL``)."""
    return folder / f"{TEMP_PREFIX}{_NAMES.getrandbits(64):016x}"


def fsync_folder(path: Path) -> None:
    """Make the entries of folder ``path`` (a file created, renamed or removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_writable(folder: Path, name: str) -> Path:
    """Create ``folder`` if needed and prove it takes a file (created and removed); else a StorageError that
    names ``name`` (e.g. "DATASET"), never the path, with the remedy. Call before a run writes anything."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        raise StorageError(
            f"{name} is not writable ({why}); nothing was written; remedy: choose another {name} or give the user "
            "running medflow write permission (and free space) there"
        ) from None
    return folder


@contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file that appears at ``path`` only if the block finishes without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fdatasync(fh.fileno())  # the data and what finds it (size, blocks); mtime may lag
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_parts(path: Path, parts: Sequence[bytes | bytearray | memoryview]) -> int:
    """Write ``parts`` one after the other to ``path`` atomically; return the size. The data is durable
    (``fdatasync``) before the rename; make the rename durable by fsyncing the folder. ``path``'s folder must
    exist (FileNotFoundError otherwise). A lean :func:`atomic_output` for data held in memory: gathered writes,
    no buffered file object."""
    tmp = temporary_path(path.parent)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            size = _write_all(fd, parts)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def _write_all(fd: int, parts: Sequence[bytes | bytearray | memoryview]) -> int:
    pending = [memoryview(part).cast("B") for part in parts]
    size = sum(view.nbytes for view in pending)
    while pending:
        written = os.writev(fd, pending)
        while pending and written >= pending[0].nbytes:  # drop what was written whole, keep the rest
            written -= pending.pop(0).nbytes
        if pending and written:
            pending[0] = pending[0][written:]
    return size


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as fh:
        fh.write(data)


def atomic_write_with(path: Path, writer: Callable[[BinaryIO], Any]) -> None:
    """Call ``writer(fileobj)`` and publish the result at ``path`` atomically."""
    with atomic_output(path) as fh:
        writer(fh)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single ``write`` on an ``O_APPEND`` descriptor.

    Lines below the pipe-buffer size are written whole even when several processes append to the
    same file, so parallel workers can share one log without a lock. A failed write raises StorageError (the
    file's name only: logs are ``inputs.jsonl``, ``quarantine.jsonl``, ...), which stops the run.
    """
    line = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:  # a log line lost would lose track of an input: stop the run instead
        why = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        raise StorageError(
            f"cannot append to {path.name} ({why}); the run stops here and loses nothing (outputs are written "
            "atomically, a re-run goes on); remedy: free space or fix the permissions of the output folder"
        ) from None


def remove_stale_temporaries(root: Path) -> int:
    """Delete temporaries left by an interrupted run below ``root``; return how many."""
    removed = 0
    if not root.exists():
        return 0
    for tmp in root.rglob(f"{TEMP_PREFIX}*"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed
