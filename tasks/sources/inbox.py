"""The staging area of a listener: one folder per study, one durable file per received instance.

Layout under ``STATE_DIR/staging/<listener>/`` (owner-only)::

    <study token>/<instance digest>.dcm      received, waiting for the study's ingest
    <study token>/claim-<run>/...            taken by one ingest run (locked by it while it runs)

Tokens and digests are keyed HMACs of the Study and SOP Instance UIDs, so no folder or file name carries a UID
or PHI. An instance is written to a temporary name, fsynced, renamed and its folder fsynced before it is
acknowledged, so a crash loses nothing acknowledged and leaves at most a temporary file, which no ingest reads
(:data:`tasks.atomic.TEMP_PREFIX`) and the next start removes. An ingest run *claims* a study: it moves the
study's files into its own locked ``claim-<run>`` folder and ingests exactly that; instances arriving meanwhile
stay outside and start a new run. A claim left by a run that died is adopted by the study's next run.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tasks.atomic import atomic_write_parts, remove_stale_temporaries
from tasks.errors import ConfigError

TOKEN = re.compile(r"^[0-9a-f]{32}$")
LISTENER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")  # as tasks.sources.config.SourceName
CLAIM_PREFIX = "claim-"
LOCK_FILE = ".lock"
SUFFIX = ".dcm"
MADE_CACHE = 4096


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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

    def __repr__(self) -> str:
        return f"Inbox({self.root.name})"

    def study_dir(self, token: str) -> Path:
        return self.root / check_token(token)

    def remove_temporaries(self) -> int:
        """Delete temporaries of writes that never finished (a crash); return how many."""
        return remove_stale_temporaries(self.root)

    def write(self, token: str, digest: str, *parts: bytes | memoryview) -> int:
        """Store one instance (``parts`` in order) durably as ``<token>/<digest>.dcm``; return its size.
        Same digest: replaced."""
        for attempt in (1, 2):
            folder = self._ensure_study(token, known=attempt == 1)
            try:
                size = atomic_write_parts(folder / f"{digest}{SUFFIX}", parts)  # data durable before the rename
                break
            except FileNotFoundError:  # a finished claim removed the emptied study folder
                if attempt == 2:
                    raise
        _fsync_dir(folder)  # the rename itself is durable
        return size

    def adopt(self, temporary: Path, token: str, digest: str) -> int:
        """Move a complete, fsynced temporary file (same file system) into ``<token>/<digest>.dcm`` durably.

        Only the study folder is fsynced: that makes the new name durable. The temporary's folder is not (one
        disk flush less per instance): should a crash keep its old name too, that is a second link to the same
        file under a temporary name, which the next start removes (:meth:`remove_temporaries`)."""
        folder = self._ensure_study(token)
        size = temporary.stat().st_size
        os.replace(temporary, folder / f"{digest}{SUFFIX}")
        _fsync_dir(folder)
        return size

    def _ensure_study(self, token: str, known: bool = False) -> Path:
        """The study's folder, created (and its entry fsynced) unless it exists; ``known``: trust that a
        folder this inbox created is still there (a write into a removed one fails and retries unknown)."""
        folder = self.study_dir(token)
        if known and token in self._made:
            return folder
        if not folder.is_dir():
            folder.mkdir(mode=0o700, exist_ok=True)
            _fsync_dir(self.root)
        with self._made_lock:
            if len(self._made) >= MADE_CACHE:  # a long-running listener: forget old studies, not grow for ever
                self._made.clear()
            self._made.add(token)
        return folder

    def staged_bytes(self) -> int:
        """Bytes of every staged file (claimed ones too): what the listener's limit counts."""
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
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
            _fsync_dir(claim)
            _fsync_dir(study)
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
