"""One ingest at a time per dataset: an exclusive ``fcntl`` lock on ``DATASET/.lock`` for the whole run.

Concurrent ingests into one dataset are not supported (they would race on the manifest and on the
clean-up of an interrupted run), so a second run is refused with a clear error. The kernel drops the
lock when its process dies, even by SIGKILL, so a crashed run never blocks the next one; and whatever a
crashed run left in ``.work``/``.staging`` is safe to remove while the lock is held.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.atomic import check_writable
from tasks.errors import ConfigError

LOCK_FILE = ".lock"


@contextmanager
def dataset_lock(dataset: Path) -> Iterator[None]:
    """Hold the dataset's ingest lock for the block; raise ConfigError when another run holds it, StorageError
    when DATASET cannot be written (before anything is)."""
    dataset = check_writable(Path(dataset), "DATASET")
    fd = os.open(dataset / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                "another ingest is running into this dataset (DATASET/.lock is held); "
                "wait for it to finish or choose another --dataset"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
