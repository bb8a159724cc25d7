"""The staging area of a listener: one folder per study, one durable file per received instance.

Layout under ``STATE_DIR/staging/<listener>/`` (owner-only)::

    <study token>/<instance digest>.dcm      received, waiting for the study's ingest
    <study token>/claim-<run>/...            taken by one ingest run (locked by it while it runs)
    .journal                                 the running listener's write-ahead journal

Tokens and digests are keyed HMACs of the Study and SOP Instance UIDs, so no folder or file name carries a UID
or PHI. An instance is written to a temporary name, fsynced, renamed and its folder fsynced before it becomes a
staged file, so a crash never leaves a partial one: at most a temporary, which no ingest reads
(:data:`tasks.atomic.TEMP_PREFIX`) and the next start removes. The listener acknowledges an instance once it is
durable in its journal (:mod:`tasks.sources.journal`, one disk flush instead of two); a thread stages journaled
instances in batches once the sender pauses, the journal is half full or a report needs them, and the next start
stages what a crash left journaled only.

An ingest run *claims* a study: it moves the study's files into its own locked ``claim-<run>`` folder and ingests
exactly that; instances arriving meanwhile stay outside and start a new run. A claim left by a run that died is
adopted by the study's next run.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tasks.atomic import atomic_write_parts, fsync_folder, remove_stale_temporaries, temporary_path
from tasks.errors import ConfigError
from tasks.sources.journal import CAPACITY, Journal
from tasks.sources.stager import FLUSH_TIMEOUT_S, STAGE_IDLE_S, Stager

T = TypeVar("T")
TOKEN = re.compile(r"^[0-9a-f]{32}$")
LISTENER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")  # as tasks.sources.config.SourceName
CLAIM_PREFIX = "claim-"
LOCK_FILE = ".lock"
SUFFIX = ".dcm"
MADE_CACHE = 4096
JOURNAL_NAME = ".journal"


def study_token(key: bytes, study_instance_uid: str) -> str:
    """Keyed, stable, non-reversible id of a study (hex, 32 chars): its staging folder and event resource."""
    mac = hmac.new(key, b"medflow-study\x00" + study_instance_uid.strip().encode("ascii", "replace"), hashlib.sha256)
    return mac.hexdigest()[:32]


def check_listener(name: str) -> str:
    """``name`` when it is a valid source name (lower-case letters, digits, '-'), else a ConfigError."""
    if not LISTENER_NAME.match(name):
        raise ConfigError("a listener name has lower-case letters, digits and '-' only (at most 40)")
    return name


def check_token(token: str) -> str:
    """``token`` when it is a study token (32 hex digits, nothing that could be a path), else a ConfigError."""
    if not TOKEN.match(token):
        raise ConfigError("a study token is 32 lower-case hex digits; pass the token the listener emitted")
    return token


@dataclass(frozen=True)
class PendingStudy:
    """A study with staged files not taken by a running ingest: counts and the newest file time."""

    token: str
    files: tuple[Path, ...]
    bytes: int
    newest_mtime: float


class Inbox:
    """The staging folder of one listener."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._made: set[str] = set()  # study folders this inbox created (durably); a claim may remove them
        self._made_lock = threading.Lock()
        self._journal: Journal | None = None
        self._stager: Stager | None = None

    def __repr__(self) -> str:
        return f"Inbox({self.root.name})"

    def study_dir(self, token: str) -> Path:
        return self.root / check_token(token)

    def remove_temporaries(self) -> int:
        """Delete temporaries of writes that never finished (a crash); return how many."""
        return remove_stale_temporaries(self.root)

    def write(self, token: str, digest: str, *parts: bytes | memoryview) -> int:
        """Store one instance (``parts`` in order) durably as ``<token>/<digest>.dcm``; return its size.
        Same digest: replaced. With a journal (:meth:`open_journal`) it is durable once journaled and becomes
        that file shortly after (:meth:`flush` waits for it)."""
        journal = self._journal
        if journal is not None:
            if not (TOKEN.match(token) and TOKEN.match(digest)):  # a record must always be stageable
                raise ConfigError("a study token and an instance digest are 32 lower-case hex digits")
            record = journal.append(token, digest, parts)
            if record is not None:
                return record.length
            self._after_journal(digest)  # too large, or the ring is full
        return self._write_durably(token, digest, parts)

    def _write_durably(self, token: str, digest: str, parts: tuple[bytes | memoryview, ...]) -> int:
        def write(folder: Path) -> int:
            return atomic_write_parts(folder / f"{digest}{SUFFIX}", parts)  # data durable before the rename

        size = self._in_study(token, write)
        fsync_folder(self.study_dir(token))  # the rename itself is durable
        return size

    def _in_study(self, token: str, action: Callable[[Path], T]) -> T:
        """``action(folder)`` in the study's folder; once more, the folder made anew, when a finished claim had
        removed it (FileNotFoundError)."""
        try:
            return action(self._ensure_study(token, known=True))
        except FileNotFoundError:
            return action(self._ensure_study(token))

    def open_journal(self, capacity: int = CAPACITY, stage_idle_s: float = STAGE_IDLE_S) -> int:
        """Acknowledge instances once they are in a write-ahead journal (:mod:`tasks.sources.journal`; a
        listener's inbox, written by that one process) and stage them from it on a thread
        (:class:`tasks.sources.stager.Stager`); first stage what a previous run left in it. Return how many
        instances that was."""
        journal = Journal(self.root / JOURNAL_NAME, capacity)
        try:
            records = journal.recover()
            for record in records:
                self._write_durably(record.token, record.digest, (journal.payload(record),))
            journal.reset()
        except BaseException:
            journal.close()
            raise
        self._journal = journal
        self._stager = Stager(journal, self._create_temporary, stage_idle_s, name=f"stager-{self.root.name}").start()
        return len(records)

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
        """Wait until every instance acknowledged so far is a staged file; False when ``timeout_s`` passed."""
        return self._stager is None or self._stager.flush(timeout_s)

    def _after_journal(self, digest: str) -> None:
        """Before a file is staged directly: let a journaled record of the same instance land first (the newer
        copy must win); other records are not waited for."""
        if self._journal is not None and self._journal.holds(digest):
            self.flush()

    def close_journal(self) -> None:
        """Stage what the journal holds, then close it (what could not be staged is staged on the next open)."""
        if self._journal is not None and self._stager is not None and self._stager.stop():
            self._journal.close()
            self._journal = self._stager = None

    def _create_temporary(self, token: str, digest: str) -> tuple[int, Path, Path]:
        """A new temporary file in the study's folder, open for writing, and the staged name it will take."""

        def create(folder: Path) -> tuple[int, Path, Path]:
            temporary = temporary_path(folder)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            return fd, temporary, folder / f"{digest}{SUFFIX}"

        return self._in_study(token, create)

    def adopt(self, temporary: Path, token: str, digest: str) -> int:
        """Move a complete, fsynced temporary file (same file system) into ``<token>/<digest>.dcm`` durably
        (after a journaled record of the same instance: the newer copy must win).

        Only the study folder is fsynced: that makes the new name durable. The temporary's folder is not (one
        disk flush less per instance): should a crash keep its old name too, that is a second link to the same
        file under a temporary name, which the next start removes (:meth:`remove_temporaries`)."""
        self._after_journal(digest)
        folder = self._ensure_study(token)
        size = temporary.stat().st_size
        os.replace(temporary, folder / f"{digest}{SUFFIX}")
        fsync_folder(folder)
        return size

    def _ensure_study(self, token: str, known: bool = False) -> Path:
        """The study's folder, created (and its entry fsynced) unless it exists; ``known``: trust that a
        folder this inbox created is still there (a write into a removed one fails and retries unknown)."""
        folder = self.study_dir(token)
        if known and token in self._made:
            return folder
        if not folder.is_dir():
            folder.mkdir(mode=0o700, exist_ok=True)
            fsync_folder(self.root)
        with self._made_lock:
            if len(self._made) >= MADE_CACHE:  # a long-running listener: forget old studies, not grow for ever
                self._made.clear()
            self._made.add(token)
        return folder

    def staged_bytes(self) -> int:
        """Bytes of every staged file (claimed ones too) and of the journal's records not staged yet: what the
        listener's limit counts."""
        journal = self._journal
        total = journal.used_bytes if journal is not None else 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name == JOURNAL_NAME and dirpath == str(self.root):
                    continue
                with suppress(OSError):  # removed by an ingest meanwhile
                    total += os.stat(os.path.join(dirpath, name)).st_size
        return total

    def pending(self) -> list[PendingStudy]:
        """Studies with files waiting, loose or in claims whose run died (on start-up, after a crash)."""
        studies = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and TOKEN.match(p.name)):
            files = list(folder.glob(f"*{SUFFIX}"))
            for claim in folder.glob(f"{CLAIM_PREFIX}*"):
                if claim.is_dir() and not _is_locked(claim):
                    files += list(claim.glob(f"*{SUFFIX}"))
            stats = {f: s for f, s in ((f, _stat(f)) for f in files) if s is not None}
            if stats:
                studies.append(
                    PendingStudy(
                        folder.name,
                        tuple(stats),
                        sum(s.st_size for s in stats.values()),
                        max(s.st_mtime for s in stats.values()),
                    )
                )
        return studies

    @contextmanager
    def claim(self, token: str, run_id: str) -> Iterator[Path | None]:
        """Take every staged file of the study into a locked ``claim-<run>`` folder; yield it (None: nothing).

        The folder is removed when the block finishes without error; after an error it stays (locked no more),
        and the study's next claim adopts its files.
        """
        study = self.study_dir(token)
        if not study.is_dir():
            yield None
            return
        claim = study / f"{CLAIM_PREFIX}{_safe(run_id)}"
        claim.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(claim / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            moved = self._gather(study, claim)
            if not moved and not any(claim.glob(f"*{SUFFIX}")):
                shutil.rmtree(claim, ignore_errors=True)
                _remove_if_empty(study)
                yield None
                return
            fsync_folder(claim)
            fsync_folder(study)
            yield claim
            shutil.rmtree(claim, ignore_errors=True)
            _remove_if_empty(study)
        finally:
            os.close(fd)

    @staticmethod
    def _gather(study: Path, claim: Path) -> int:
        """Move loose files and those of abandoned claims into ``claim``; return how many moved."""
        moved = 0
        for old in study.glob(f"{CLAIM_PREFIX}*"):
            if old == claim or not old.is_dir():
                continue
            fd = os.open(old / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a running ingest holds it
                for f in old.glob(f"*{SUFFIX}"):
                    os.replace(f, claim / f.name)
                    moved += 1
                shutil.rmtree(old, ignore_errors=True)
            finally:
                os.close(fd)
        for f in study.glob(f"*{SUFFIX}"):
            os.replace(f, claim / f.name)
            moved += 1
        return moved


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _is_locked(claim: Path) -> bool:
    """Whether a running ingest holds ``claim`` (its lock is free when that process is gone, even killed)."""
    try:
        fd = os.open(claim / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _remove_if_empty(folder: Path) -> None:
    with suppress(OSError):  # new instances arrived meanwhile
        folder.rmdir()


def _safe(run_id: str) -> str:
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", run_id):
        raise ConfigError("a run id has letters, digits, '-' and '_' only")
    return run_id


def listener_inbox(state_dir: Path, listener: str) -> Inbox:
    """The inbox of listener ``listener``: ``STATE_DIR/staging/<listener>``."""
    from tasks.sources.staging import staging_dir

    return Inbox(staging_dir(state_dir, check_listener(listener)))
