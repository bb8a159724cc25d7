"""A listener inbox's write-ahead journal: an instance is durable once appended here and becomes its staged
file later, off the sender's path.

Making a new file durable takes two disk flushes that each commit file-system metadata (the file's blocks and
size, then its name in the folder): 0.69 ms for a 39 kB CT slice on the machine this was measured on, more than
dcmtk's storescp spends on a whole instance. Overwriting blocks of a file that is already allocated and written
needs no metadata, so one ``fdatasync`` of the journal (0.10-0.19 ms there) makes an instance durable; the inbox then
writes the ordinary staged files from it in batches (:class:`tasks.sources.stager.Stager`), syncs them and moves
the journal's checkpoint past them.

Layout: a superblock in the first block, twice, written in turn (magic, epoch, generation, the last checkpointed
sequence number and where the next record starts, CRC32; the valid copy with the newer epoch counts), then a ring
of records, each a header (magic, generation, sequence number, payload length, study token, instance digest, CRC32
of header and payload) followed by the payload, padded to a block.
Records are appended in sequence order; one that does not fit before the end of the ring goes to its start, and
space is reused only behind the durable checkpoint. On open, :meth:`Journal.recover` follows the chain from the
checkpoint (the record with the next sequence number, right after the last one or at the ring's start) until a
record is missing or torn (its CRC fails: it never was acknowledged); the caller stages those durably, and
:meth:`Journal.reset` starts a new generation, so no old record is ever read back again. The header holds the
inbox's keyed names only, never a UID.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import secrets
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.atomic import fsync_folder
from tasks.errors import ConfigError

BLOCK = 4096
CAPACITY = 128 << 20
"""Default ring size (allocated on first open, 0.3 s here): about 250 CT slices of 512 kB."""
MAX_PAYLOAD = 1 << 20
"""Larger instances are written straight to their staged file: their own two flushes are a small share of it."""
_SUPER = struct.Struct("<4sQQQQ")  # magic, epoch, generation, checkpoint sequence number, next record offset
SUPER_SLOTS = (0, BLOCK // 2)
"""Two copies, written in turn (the newer epoch wins): a superblock torn by a crash leaves the previous one."""
_RECORD = struct.Struct("<4sQQI32s32s")  # magic, generation, sequence number, payload length, token, digest
_CRC = struct.Struct("<I")
SUPER_MAGIC = b"MFJ1"
RECORD_MAGIC = b"MFR1"
HEADER_BYTES = _RECORD.size + _CRC.size
_FILL = bytes(1 << 20)
_COPY = getattr(os, "copy_file_range", None)  # Linux
_NO_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP}

Buffer = bytes | bytearray | memoryview


def _blocks(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


@dataclass(frozen=True)
class Record:
    """One journaled instance: where its header starts, its payload length, its inbox names."""

    seq: int
    offset: int
    length: int
    token: str
    digest: str

    @property
    def end(self) -> int:
        """Where the record after it starts, unless that one went to the ring's start."""
        return self.offset + _blocks(HEADER_BYTES + self.length)


class Journal:
    """The journal file of one inbox, held (``flock``) by the one process that writes it; thread-safe."""

    def __init__(self, path: Path, capacity: int = CAPACITY) -> None:
        self.path = path
        self._pending: deque[Record] = deque()  # appended, not yet behind the checkpoint, in sequence order
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError("another running listener writes this staging area; stop it first") from None
        self.fd = fd
        size = os.fstat(fd).st_size
        if size < capacity:  # new: write every block once, so that appends never allocate
            for offset in range(size - size % BLOCK, capacity, len(_FILL)):
                os.pwrite(fd, _FILL[: min(len(_FILL), capacity - offset)], offset)
            os.fsync(fd)
            fsync_folder(path.parent)
        self.capacity = max(size, capacity) // BLOCK * BLOCK
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)
        self._checkpointed = threading.Condition(self._lock)
        self._generation = 0
        self._epoch = 0  # of the newest superblock written
        self._next_seq = 1
        self._checkpoint_seq = 0
        self._head = BLOCK
        self._used = 0  # bytes of the pending records
        self.last_append = 0.0  # time.monotonic() of the newest append

    def __repr__(self) -> str:
        return f"Journal({self.path.name}, {len(self._pending)} pending)"

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest record appended (0: none since :meth:`reset`)."""
        with self._lock:
            return self._next_seq - 1

    @property
    def used_bytes(self) -> int:
        """Bytes of the ring held by records not yet behind the checkpoint."""
        with self._lock:
            return self._used

    def recover(self) -> list[Record]:
        """The records of the last generation after its checkpoint, in order (read them with :meth:`payload`)."""
        supers = [s for s in (self._read_super(slot) for slot in SUPER_SLOTS) if s is not None]
        if not supers:
            return []
        epoch, generation, checkpoint, offset = max(supers)
        self._epoch = epoch
        records: list[Record] = []
        seq, at = checkpoint + 1, offset
        while True:
            record = self._read(at, generation, seq) or (self._read(BLOCK, generation, seq) if at != BLOCK else None)
            if record is None:
                return records
            records.append(record)
            seq, at = seq + 1, record.end

    def reset(self) -> None:
        """Start a new, empty generation (after the recovered records were staged durably)."""
        with self._lock:
            self._generation = secrets.randbits(63)
            self._next_seq, self._checkpoint_seq, self._head, self._used = 1, 0, BLOCK, 0
            self._pending.clear()
            self._write_super(0, BLOCK)

    def append(self, token: str, digest: str, parts: Sequence[Buffer]) -> Record | None:
        """Write one instance (``parts`` in order) and make it durable; None when it does not fit (too large,
        or the ring is full of records not yet staged)."""
        length = sum(memoryview(p).nbytes for p in parts)
        size = _blocks(HEADER_BYTES + length)
        if length > MAX_PAYLOAD:
            return None
        with self._lock:
            at = self._place(size)
            if at is None:
                return None
            header = _RECORD.pack(RECORD_MAGIC, self._generation, self._next_seq, length, token.encode(),
                                  digest.encode())  # fmt: skip
            crc = zlib.crc32(header)
            for part in parts:
                crc = zlib.crc32(part, crc)
            record = Record(self._next_seq, at, length, token, digest)
            written = os.pwritev(self.fd, [header, _CRC.pack(crc), *parts], at)
            if written != HEADER_BYTES + length:
                raise OSError("journal: short write")
            self._next_seq += 1
            self._head = record.end
            self._used += size
            self.last_append = time.monotonic()
            self._pending.append(record)
            self._appended.notify_all()
        os.fdatasync(self.fd)  # outside the lock: concurrent appends share a flush
        return record

    def wait_for_records(self, after_seq: int, timeout_s: float, limit: int | None = None) -> list[Record]:
        """The appended records with a sequence number above ``after_seq``, oldest first, at most ``limit``
        (waiting up to ``timeout_s`` for one)."""
        with self._lock:
            if self._next_seq - 1 <= after_seq:
                self._appended.wait(timeout_s)
            return list(itertools.islice((r for r in self._pending if r.seq > after_seq), limit))

    def holds(self, digest: str) -> bool:
        """Whether a record of instance ``digest`` is not yet behind the checkpoint."""
        with self._lock:
            return any(r.digest == digest for r in self._pending)

    def payload(self, record: Record) -> bytes:
        return os.pread(self.fd, record.length, record.offset + HEADER_BYTES)

    def copy_to(self, record: Record, fd: int) -> None:
        """Write ``record``'s payload to the start of file ``fd`` (in the kernel where it can)."""
        offset, left = record.offset + HEADER_BYTES, record.length
        if _COPY is not None:
            try:
                while left:
                    copied = _COPY(self.fd, fd, left, offset)
                    if copied == 0:
                        raise OSError("journal: copy ended early")
                    offset, left = offset + copied, left - copied
                return
            except OSError as exc:
                if left != record.length or exc.errno not in _NO_COPY:
                    raise
        os.pwrite(fd, self.payload(record), 0)  # no copy_file_range here, or not between these files

    def checkpoint(self, record: Record) -> None:
        """Records up to ``record`` are staged durably: never read them back, reuse their space."""
        with self._lock:
            self._write_super(record.seq, record.end)  # durable before the space can be written over
            while self._pending and self._pending[0].seq <= record.seq:
                done = self._pending.popleft()
                self._used -= done.end - done.offset
            self._checkpoint_seq = max(self._checkpoint_seq, record.seq)
            self._checkpointed.notify_all()

    def wait_checkpoint(self, seq: int, timeout_s: float) -> bool:
        """Wait until every record up to ``seq`` is staged; False when ``timeout_s`` passed first."""
        with self._lock:
            return self._checkpointed.wait_for(lambda: self._checkpoint_seq >= seq, timeout_s)

    def close(self) -> None:
        os.close(self.fd)

    def _write_super(self, checkpoint: int, offset: int) -> None:
        self._epoch += 1
        data = _SUPER.pack(SUPER_MAGIC, self._epoch, self._generation, checkpoint, offset)
        os.pwrite(self.fd, data + _CRC.pack(zlib.crc32(data)), SUPER_SLOTS[self._epoch % 2])
        os.fdatasync(self.fd)

    def _read_super(self, slot: int) -> tuple[int, int, int, int] | None:
        """(epoch, generation, checkpoint, next record offset) of a whole superblock copy."""
        raw = os.pread(self.fd, _SUPER.size + _CRC.size, slot)
        if len(raw) < _SUPER.size + _CRC.size or _CRC.unpack_from(raw, _SUPER.size)[0] != zlib.crc32(
            raw[: _SUPER.size]
        ):
            return None
        magic, epoch, generation, checkpoint, offset = _SUPER.unpack_from(raw)
        return (epoch, generation, checkpoint, offset) if magic == SUPER_MAGIC else None

    def _place(self, size: int) -> int | None:
        """Where a record of ``size`` bytes goes, without overwriting a pending one; None: no room now."""
        start = self._head if self._head + size <= self.capacity else BLOCK
        if BLOCK + size > self.capacity:
            return None
        if not self._pending:
            return start
        tail = self._pending[0].offset
        if self._pending[-1].offset >= tail:  # pending records in one span, [tail, head)
            return start if start == self._head or start + size <= tail else None
        return start if start == self._head and start + size <= tail else None  # wrapped: [tail, end) + [.., head)

    def _read(self, at: int, generation: int, seq: int) -> Record | None:
        """The record at ``at`` when it is whole and the expected one."""
        if at + HEADER_BYTES > self.capacity:
            return None
        raw = os.pread(self.fd, HEADER_BYTES, at)
        magic, gen, found, length, token, digest = _RECORD.unpack_from(raw)
        if magic != RECORD_MAGIC or gen != generation or found != seq or at + HEADER_BYTES + length > self.capacity:
            return None
        payload = os.pread(self.fd, length, at + HEADER_BYTES)
        if _CRC.unpack_from(raw, _RECORD.size)[0] != zlib.crc32(payload, zlib.crc32(raw[: _RECORD.size])):
            return None
        return Record(seq, at, length, token.decode("ascii", "replace"), digest.decode("ascii", "replace"))

