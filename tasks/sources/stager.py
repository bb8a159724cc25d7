"""The journal's stager: a thread that turns journaled instances into the inbox's staged files, in batches, and
then moves the journal's checkpoint past them.

It stages when the sender has paused for :data:`STAGE_IDLE_S`, when the journal is half full, and when a flush
asks (the listener flushes before it reports a study, so an ingest never starts before its files are staged).
While a sender streams, the staged files' writes and flushes would share the disk with the journal's, whose
flushes the sender waits for (CT slices were acknowledged 1.2-1.3x slower with staging alongside). Each file of a
batch is written from the journal under a temporary name, the batch synced, renamed into place and its folders
fsynced: a staged name always holds a whole instance. A batch that fails (a full disk) stays journaled and is
tried again; what is left when the listener stops is staged by the next start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tasks.atomic import fsync_folder
from tasks.errors import ConfigError
from tasks.sources.journal import Journal, Record

logger = logging.getLogger(__name__)

STAGE_IDLE_S = 0.1
"""Stage once nothing was journaled for this long."""
STAGE_POLL_S = 0.05
"""How often the stager looks whether staging is due while records wait."""
STAGE_BATCH = 256
"""Records per batch (each file's sync then costs little: the first commits the batch's metadata)."""
FLUSH_TIMEOUT_S = 30.0
RETRY_S = 1.0

CreateTemporary = Callable[[str, str], tuple[int, Path, Path]]
"""(study token, instance digest) -> an open new temporary file in the study's folder, its path, its staged name."""


class Stager:
    """Stages one journal's records through ``create``; :meth:`start` it, :meth:`stop` it."""

    def __init__(self, journal: Journal, create: CreateTemporary, stage_idle_s: float = STAGE_IDLE_S,
                 name: str = "stager") -> None:  # fmt: skip
        self.journal = journal
        self.create = create
        self.stage_idle_s = stage_idle_s
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopping = threading.Event()
        self._wake = threading.Event()  # look again now
        self._wanted = 0  # stage up to this sequence number now (a flush waits for it)
        self._wanted_lock = threading.Lock()

    def start(self) -> Stager:
        self._thread.start()
        return self

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
        """Stage every record appended so far now; False when that took longer than ``timeout_s``."""
        seq = self.journal.last_seq
        with self._wanted_lock:
            self._wanted = max(self._wanted, seq)
        self._wake.set()
        return self.journal.wait_checkpoint(seq, timeout_s)

    def stop(self, timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
        """Stage what is journaled and end the thread; False when it is still busy after ``timeout_s``."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        journal, done = self.journal, 0
        while True:
            if not journal.wait_for_records(done, 0.2, limit=1):
                if self._stopping.is_set():
                    return
                continue
            if not self._due(done):
                self._wake.wait(min(self.stage_idle_s / 2, STAGE_POLL_S))
                self._wake.clear()
                continue
            batch = journal.wait_for_records(done, 0, limit=STAGE_BATCH)
            try:
                self._stage(batch)
            except (OSError, ConfigError) as exc:  # a full disk, say: the records stay journaled, tried again
                logger.error("%s: staging journaled instances failed (%s); retrying", self._thread.name,
                             type(exc).__name__)  # fmt: skip
                if self._stopping.wait(RETRY_S):
                    return
                continue
            journal.checkpoint(batch[-1])
            done = batch[-1].seq

    def _due(self, done: int) -> bool:
        journal = self.journal
        return (
            self._stopping.is_set()
            or self._wanted > done
            or journal.used_bytes * 2 >= journal.capacity
            or time.monotonic() - journal.last_append >= self.stage_idle_s
        )

    def _stage(self, batch: list[Record]) -> None:
        """Write the batch's files under temporary names, sync them, move them into place, fsync the folders."""
        made: list[tuple[int, Path, Path]] = []  # open file, temporary, staged name
        try:
            for record in batch:
                made.append(self.create(record.token, record.digest))
                self.journal.copy_to(record, made[-1][0])
            for fd, _, _ in made:
                os.fdatasync(fd)
            for _, temporary, final in made:
                os.replace(temporary, final)
            for folder in {final.parent for _, _, final in made}:
                fsync_folder(folder)
        except BaseException:
            for _, temporary, _ in made:
                temporary.unlink(missing_ok=True)
            raise
        finally:
            for fd, _, _ in made:
                os.close(fd)
