"""Write a large C-STORE data set to disk as it arrives, below pynetdicom, so that acknowledging it needs only
the syncs.

pynetdicom reads a PDU in 4 kB ``recv`` calls, copies each P-DATA fragment four or five times and assembles
the data set in a growing ``BytesIO`` before its handler sees it; for a cine of several MB that, and writing the
MB afterwards, is most of the time the sender waits for the response. A :class:`SpoolingSocket` wraps an
accepted (plain TCP) connection and hands pynetdicom the PDUs it reads, one whole PDU at a time (one
``recv_into`` per PDU, into a reused buffer). Once a C-STORE request's command has arrived and its data set
spans more than one fragment, each data set fragment is written straight from that buffer to a temporary file
in the inbox (behind the Part-10 header), and pynetdicom is given the PDU with that fragment emptied; the disk
write-back is started every :data:`WRITEBACK_BYTES` (``POSIX_FADV_DONTNEED``), so the handler's ``fdatasync``
waits only for the tail. Everything else (association PDUs, commands, C-ECHO, data sets in one fragment such as
a CT slice) passes through unchanged and takes pynetdicom's usual path.

The handler takes the spooled file with :meth:`Spool.take` (matched by Message ID and SOP Instance UID): a
file whose writing failed is refused (0xA700, the sender retries). A spooled file is an ordinary temporary
(:data:`tasks.atomic.TEMP_PREFIX`): a crash leaves it for the next start to delete, and it is acknowledged only
once fsynced and renamed into place. TLS connections are not wrapped (pynetdicom asks an ``SSLSocket`` for
data it has buffered, which a wrapper would hide).
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import select
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.uid import UID
from pynetdicom.dsutils import create_file_meta, decode, encode_file_meta

from tasks.atomic import TEMP_PREFIX

logger = logging.getLogger(__name__)

PREAMBLE = b"\x00" * 128 + b"DICM"
P_DATA_TF = 0x04
C_STORE_RQ = 0x0001
NO_DATA_SET = 0x0101
HEAD_BYTES = 64 * 1024
"""How much of a spooled data set is kept in memory to read the placing fields from."""
WRITEBACK_BYTES = 4 << 20
"""Start the disk write of what has been spooled each time this much more has been written."""
MAX_FILTERED_PDU = 64 << 20
"""Larger P-DATA PDUs pass through unchanged (they are refused by pynetdicom's own limit anyway)."""
_FADVISE = getattr(os, "posix_fadvise", None)
_PDU_HEADER = struct.Struct(">BBL")
_ITEM_LENGTH = struct.Struct(">L")


@dataclass
class Spooled:
    """One data set written to ``path`` (``fd`` open until :meth:`finish`); ``failed``: a write failed."""

    path: Path
    fd: int
    message_id: int
    sop_instance_uid: str
    header_bytes: int
    head: bytearray = field(default_factory=bytearray)
    data_bytes: int = 0
    flushed: int = 0
    failed: bool = False
    _closed: bool = field(default=False, repr=False)

    def write(self, data: memoryview) -> None:
        """Append one fragment; keep the start of the data set; start the write-back every few MB."""
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        while data:
            written = os.write(self.fd, data)
            data = data[written:]
            self.data_bytes += written
        if self.header_bytes + self.data_bytes - self.flushed >= WRITEBACK_BYTES:
            self.write_back()

    def write_back(self) -> None:
        """Start the disk write of what has been written since the last call (``POSIX_FADV_DONTNEED``)."""
        end = self.header_bytes + self.data_bytes
        if _FADVISE is not None and end > self.flushed:
            _FADVISE(self.fd, self.flushed, end - self.flushed, os.POSIX_FADV_DONTNEED)
            self.flushed = end

    def finish(self) -> Path:
        """Make the file durable (``fdatasync``) and close it; return its path."""
        try:
            os.fdatasync(self.fd)
        finally:
            self.close()
        return self.path

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class Spool:
    """The spooled data sets of one connection's C-STORE requests, written into ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.assoc: Any = None  # the pynetdicom Association, once the connection has one (its accepted contexts)
        self._syntaxes: dict[int, str] | None = None
        self._command = bytearray()
        self._request: tuple[int, bytes] | None = None  # the last command: context ID, encoded command set
        self._current: Spooled | None = None
        self._done: deque[Spooled] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self.droppable = False

    def filter(self, body: memoryview) -> bytes | memoryview:
        """A P-DATA-TF PDU's body as pynetdicom should see it: spooled data set fragments emptied.
        :attr:`droppable` tells whether it held only spooled fragments, none the last of its data set (so
        pynetdicom need not see it at all)."""
        self.droppable = False
        with self._lock:
            if self._closed:
                return body
            try:
                return self._filter(body)
            except Exception as exc:  # a malformed PDU: pynetdicom judges it as sent; a bug must not lose data
                logger.warning("listener: spooling stopped for one instance (%s); refused", type(exc).__name__)
                self._abandon()
                return body

    def _filter(self, body: memoryview) -> bytes | memoryview:
        parts: list[bytes | memoryview] = []
        changed = False
        middle = True  # only spooled fragments, none a data set's last
        offset = 0
        while offset < len(body):
            (length,) = _ITEM_LENGTH.unpack_from(body, offset)
            end = offset + 4 + length
            if length < 2 or end > len(body):
                raise ValueError("PDV item length")
            context_id, control = body[offset + 4], body[offset + 5]
            if self._spool(context_id, control, body[offset + 6 : end]):
                parts.append(bytes((0, 0, 0, 2, context_id, control)))  # the item, its fragment emptied
                changed = True
                middle = middle and not control & 2
            else:
                parts.append(body[offset:end])
                middle = False
            offset = end
        if not changed:
            return body
        self.droppable = middle
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _spool(self, context_id: int, control: int, data: memoryview) -> bool:
        """Handle one fragment; True when it was spooled (and is to be emptied)."""
        if control & 1:  # a command fragment: a new message
            self._abandon()  # a data set still being spooled was cut short
            self._command += data
            if control & 2:
                self._request = (context_id, bytes(self._command))  # decoded only if its data set is spooled
                self._command.clear()
            return False
        current = self._current
        if current is None:
            pending, self._request = self._request, None
            if pending is None or control & 2:  # no command, or the data set in one fragment: pynetdicom's
                return False
            request = self._store_request(*pending)
            if request is None:  # not a C-STORE request
                return False
            current = self._open(*request)
            if current is None:  # could not open: this data set goes through pynetdicom
                return False
        if not current.failed:
            try:
                current.write(data)
            except OSError:
                current.failed = True  # its earlier fragments are gone: the request will be refused
        if control & 2:
            self._current = None
            if current.failed:
                current.discard()
            else:
                current.write_back()  # the tail, before the handler's fdatasync waits for it
            self._done.append(current)
        return True

    def _store_request(self, context_id: int, command: bytes) -> tuple[int, str, bytes] | None:
        """Message ID, SOP Instance UID and the Part-10 header of a C-STORE request with a data set."""
        cs = decode(io.BytesIO(command), True, True)
        if cs.get("CommandField") != C_STORE_RQ or cs.get("CommandDataSetType", NO_DATA_SET) == NO_DATA_SET:
            return None
        if self._syntaxes is None and self.assoc is not None:
            self._syntaxes = {int(cx.context_id): str(cx.transfer_syntax[0]) for cx in self.assoc.accepted_contexts}
        syntax = (self._syntaxes or {}).get(context_id)
        if syntax is None:
            return None
        meta = create_file_meta(
            sop_class_uid=UID(str(cs.AffectedSOPClassUID)),
            sop_instance_uid=UID(str(cs.AffectedSOPInstanceUID)),
            transfer_syntax=UID(syntax),
        )
        return int(cs.MessageID), str(cs.AffectedSOPInstanceUID), PREAMBLE + encode_file_meta(meta)

    def _open(self, message_id: int, sop_instance_uid: str, header: bytes) -> Spooled | None:
        path = self.folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        spooled = Spooled(path, fd, message_id, sop_instance_uid, len(header))
        try:
            view = memoryview(header)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            spooled.discard()
            return None
        self._current = spooled
        return spooled

    def _abandon(self) -> None:
        """Give up the data set being spooled: its request, should pynetdicom deliver it, is refused."""
        current, self._current = self._current, None
        if current is not None:
            current.failed = True
            current.discard()
            self._done.append(current)

    def take(self, message_id: int, sop_instance_uid: str) -> Spooled | None:
        """The spooled data set of this request (``failed``: refuse it), else None (it went through
        pynetdicom); older ones are dropped."""
        with self._lock:
            while self._done:
                spooled = self._done.popleft()
                if (spooled.message_id, spooled.sop_instance_uid) == (message_id, sop_instance_uid):
                    return spooled
                spooled.discard()
        return None

    def close(self) -> None:
        """Delete what was spooled and not taken (the connection ended)."""
        with self._lock:
            self._closed = True
            while self._done:
                self._done.popleft().discard()
            if self._current is not None:
                self._current.discard()
                self._current = None


class SpoolingSocket:
    """An accepted TCP connection that hands pynetdicom whole PDUs, P-DATA filtered through a :class:`Spool`."""

    def __init__(self, sock: socket.socket, spool: Spool) -> None:
        self._sock = sock
        self.spool = spool
        self._buffer = bytearray(64 * 1024)
        self._out: memoryview = memoryview(b"")
        self._passthrough = 0  # bytes of a PDU that go from the socket to pynetdicom unchanged

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def __str__(self) -> str:
        return str(self._sock)

    def recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes of the stream pynetdicom reads (blocking, like ``socket.recv``)."""
        if not self._out and not self._passthrough:
            self._next_pdu()
        if self._out:
            chunk, self._out = self._out[:bufsize], self._out[bufsize:]
            return bytes(chunk)
        if self._passthrough:
            data = self._sock.recv(min(bufsize, self._passthrough))
            self._passthrough -= len(data)
            if not data:
                self._passthrough = 0
            return data
        return b""  # the peer closed the connection

    def _next_pdu(self) -> None:
        """Read the next PDU for pynetdicom. P-DATA holding only spooled middle fragments of a data set is
        dropped while the next PDU is already waiting (pynetdicom's work per PDU is saved; it gets the
        emptied PDU whenever it would otherwise wait here, so its timers and stop requests still run)."""
        while True:
            header = self._read(6, memoryview(bytearray(6)))
            if len(header) < 6:
                self._out = header
                return
            pdu_type, _, length = _PDU_HEADER.unpack(header)
            if pdu_type != P_DATA_TF or length > MAX_FILTERED_PDU:
                self._out, self._passthrough = header, length
                return
            if len(self._buffer) < length:
                self._buffer = bytearray(length)
            body = self._read(length, memoryview(self._buffer)[:length])
            filtered = self.spool.filter(body) if len(body) == length else body  # cut short: pynetdicom sees it
            if filtered is not body:
                if self.spool.droppable and select.select([self._sock], [], [], 0)[0]:
                    continue
                header = memoryview(_PDU_HEADER.pack(P_DATA_TF, 0, len(filtered)))
            self._out = memoryview(b"".join((header, filtered)))
            return

    def _read(self, size: int, into: memoryview) -> memoryview:
        """Read ``size`` bytes into ``into``; fewer if the connection ends."""
        got = 0
        while got < size:
            n = self._sock.recv_into(into[got:size])
            if not n:
                break
            got += n
        return into[:got]

    def close(self) -> None:
        self.spool.close()
        self._sock.close()
