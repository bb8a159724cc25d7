"""Answer C-STORE requests below pynetdicom: each data set goes to disk as it arrives, the response straight back.

pynetdicom hands a received message through two threads that poll each other (the association's reactor sleeps
1 ms between looks), reads a PDU in 4 kB ``recv`` calls, copies each P-DATA fragment several times, assembles
the data set in a growing ``BytesIO`` and builds its response through four layers of objects: for a CT slice
that is about 2 ms of the 3 ms a sender waited per instance, for a cine of several MB most of it.

A :class:`SpoolingSocket` wraps an accepted plain-TCP connection and reads it one whole PDU at a time (one
``recv_into`` per PDU, into a reused buffer). P-DATA goes through a :class:`Spool`: once a C-STORE request's
command has arrived on an accepted presentation context, its data set is taken here; a data set in one fragment
(a CT slice) is handed to the listener's ``answer`` from the buffer; one spread over many (a cine) is written
fragment by fragment to a temporary file in the inbox behind the Part-10 header (disk write-back started every
:data:`WRITEBACK_BYTES`, so the final ``fdatasync`` waits only for the tail) and handed over when complete. The
``answer`` stages the instance durably and returns the DIMSE status; only then is the C-STORE-RSP
(:mod:`tasks.sources.store_messages`) written to the connection, on pynetdicom's own DUL thread (the one reading),
so no two PDUs interleave. pynetdicom never sees that message; everything else (association set-up, C-ECHO,
release, abort, a C-STORE on a context it did not accept) passes through to it unchanged, and when nothing of a
PDU is left for it and no next PDU arrives within :data:`NEXT_PDU_WAIT_S` it gets an empty P-DATA-TF, so its
timers and stop requests still run.

A spooled file is an ordinary temporary (:data:`tasks.atomic.TEMP_PREFIX`): a crash leaves it for the next start
to delete, and it is acknowledged only once fsynced and renamed into place. A data set cut short by the next
command, or whose writing failed, is refused (0xA700: the sender keeps it and retries). TLS connections are not
wrapped (pynetdicom asks an ``SSLSocket`` for data it has buffered, which a wrapper would hide); they take
pynetdicom's path.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.atomic import temporary_path
from tasks.sources.store_messages import REFUSED, part10_header, read_command, store_response_pdu

logger = logging.getLogger(__name__)

P_DATA_TF = 0x04
HEAD_BYTES = 64 * 1024
"""How much of a spooled data set is kept in memory to read the placing fields from."""
WRITEBACK_BYTES = 4 << 20
"""Start the disk write of what has been spooled each time this much more has been written."""
MAX_FILTERED_PDU = 64 << 20
"""Larger P-DATA PDUs pass through unchanged (they are refused by pynetdicom's own limit anyway)."""
NEXT_PDU_WAIT_S = 0.01
"""How long to wait for the sender's next PDU before pynetdicom gets an empty P-DATA-TF instead."""
MIN_PEER_PDU = 1024
"""Answer here only when the peer accepts PDUs of this size (a C-STORE-RSP is under 300 bytes)."""
_FADVISE = getattr(os, "posix_fadvise", None)
_PDU_HEADER = struct.Struct(">BBL")
_ITEM_HEADER = struct.Struct(">LBB")
_ITEM_LENGTH = struct.Struct(">L")
_EMPTY_P_DATA = _PDU_HEADER.pack(P_DATA_TF, 0, 0)
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux


@dataclass(frozen=True)
class StoreRequest:
    """A C-STORE request taken below pynetdicom: what its response and its file's meta header need."""

    context_id: int
    message_id: int
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str

    def part10_header(self) -> bytes:
        """Preamble, prefix and file meta information of the instance as it will be staged."""
        return part10_header(self.sop_class_uid, self.sop_instance_uid, self.transfer_syntax)


@dataclass
class Spooled:
    """One data set written to ``path`` (``fd`` open until :meth:`finish`); ``failed``: a write failed."""

    path: Path
    fd: int
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
            if self.fd >= 0:
                os.close(self.fd)

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


Answer = Callable[[StoreRequest, "memoryview | Spooled"], int]
"""Stage one instance durably and return the DIMSE status of its response; called on the DUL thread. A
:class:`Spooled` data set is the callee's to finish or discard."""


class Spool:
    """The C-STORE requests of one connection, answered with ``answer``; their spooled data sets in ``folder``."""

    def __init__(self, folder: Path, answer: Answer) -> None:
        self.folder = folder
        self.answer = answer
        self.assoc: Any = None  # the pynetdicom Association, once the connection has one (its accepted contexts)
        self.responses: list[bytes] = []  # C-STORE-RSP PDUs to send, in order
        self._contexts: dict[int, tuple[str, str]] | None = None  # context ID -> abstract, transfer syntax
        self._command = bytearray()
        self._request: StoreRequest | None = None  # the request whose data set is arriving
        self._current: Spooled | None = None
        self._lock = threading.Lock()
        self._closed = False

    def filter(self, body: memoryview) -> bytes | memoryview:
        """A P-DATA-TF PDU's body as pynetdicom should see it: the items of messages answered here removed
        (``b""``: nothing is left)."""
        with self._lock:
            if self._closed:
                return body
            try:
                return self._filter(body)
            except Exception as exc:  # a malformed PDU: pynetdicom judges it as sent; a bug must not lose data
                logger.warning("listener: a P-DATA PDU could not be read (%s); passed on", type(exc).__name__)
                self._abandon()
                return body

    def _filter(self, body: memoryview) -> bytes | memoryview:
        parts: list[bytes | memoryview] = []
        changed = False
        offset = 0
        while offset < len(body):
            (length,) = _ITEM_LENGTH.unpack_from(body, offset)
            end = offset + 4 + length
            if length < 2 or end > len(body):
                raise ValueError("PDV item length")
            item = body[offset:end]
            kept = self._item(item[4], item[5], item[6:], item)
            if kept is not item:
                changed = True
            if kept:
                parts.append(kept)
            offset = end
        if not changed:
            return body
        return b"".join(parts)

    def _item(self, context_id: int, control: int, data: memoryview, item: memoryview) -> bytes | memoryview:
        """Handle one presentation data value item; return what of it pynetdicom gets (``b""``: nothing)."""
        if control & 1:  # a command fragment: held until the command is whole
            self._abandon()  # a data set still arriving was cut short by a new message
            self._command += data
            if not control & 2:
                return b""
            command, self._command = bytes(self._command), bytearray()
            request = self._store_request(context_id, command)
            if request is None:  # not ours: pynetdicom gets the whole command as one fragment
                return _ITEM_HEADER.pack(len(command) + 2, context_id, control) + command
            self._request = request
            return b""
        request = self._request
        if request is None:  # a data set of a message pynetdicom handles
            return item
        if control & 2 and self._current is None:  # the whole data set in one fragment
            self._request = None
            self._reply(request, data)
            return b""
        current = self._current or self._open(request)
        if not current.failed:
            try:
                current.write(data)
            except OSError:
                current.failed = True  # its earlier fragments are gone: the request will be refused
        if control & 2:
            self._request, self._current = None, None
            if current.failed:
                current.discard()
                self._respond(request, REFUSED)
            else:
                current.write_back()  # the tail, before the answer's fdatasync waits for it
                self._reply(request, current)
        return b""

    def _store_request(self, context_id: int, command: bytes) -> StoreRequest | None:
        """The C-STORE request (with a data set, on an accepted context of its SOP class) this command is, else
        None."""
        assoc = self.assoc  # read on its DUL thread: Sta6 once the A-ASSOCIATE-AC has gone out
        if assoc is None or assoc.dul.state_machine.current_state != "Sta6":
            return None
        cs = read_command(command)
        if cs is None or not cs.is_store_with_data_set:
            return None
        if self._contexts is None:
            self._contexts = {
                int(cx.context_id): (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                for cx in assoc.accepted_contexts
            }
        abstract, syntax = self._contexts.get(context_id, ("", ""))
        peer_pdu = int(assoc.requestor.maximum_length or 0)
        if abstract != cs.sop_class_uid or 0 < peer_pdu < MIN_PEER_PDU:  # pynetdicom answers what does not fit
            return None
        return StoreRequest(context_id, cs.message_id, cs.sop_class_uid, cs.sop_instance_uid, syntax)

    def _open(self, request: StoreRequest) -> Spooled:
        """A temporary file holding the Part-10 header; a ``failed`` one when it cannot be written."""
        path = temporary_path(self.folder)
        header = request.part10_header()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError:
            spooled = Spooled(path, -1, len(header), failed=True)
        else:
            spooled = Spooled(path, fd, len(header))
            try:
                view = memoryview(header)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                spooled.failed = True
        self._current = spooled
        return spooled

    def _reply(self, request: StoreRequest, data: memoryview | Spooled) -> None:
        try:
            status = self.answer(request, data)
        except Exception as exc:  # the answer must not raise; if it does, nothing is acknowledged
            logger.error("listener: C-STORE failed (%s); refused", type(exc).__name__)
            if isinstance(data, Spooled):
                data.discard()
            status = REFUSED
        self._respond(request, status)

    def _respond(self, request: StoreRequest, status: int) -> None:
        self.responses.append(
            store_response_pdu(
                request.context_id, request.message_id, request.sop_class_uid, request.sop_instance_uid, status
            )
        )

    def _abandon(self) -> None:
        """Refuse the request whose data set was cut short (its spooled part is deleted)."""
        request, current = self._request, self._current
        self._request, self._current = None, None
        if current is not None:
            current.discard()
        if request is not None and not self._closed:
            self._respond(request, REFUSED)

    def pause_reactor(self) -> None:
        """Hold the association's reactor thread while requests are answered here: it has nothing to do then,
        and it polls every 1 ms (hard-coded), each time taking the GIL from the threads that answer (with four
        associations at once, 4,000 wake-ups a second). pynetdicom pauses it the same way around its own sends;
        :meth:`wake_reactor` lets it run whenever pynetdicom gets a PDU, and abort or kill let it run too."""
        if self.assoc is not None:
            self.assoc._reactor_checkpoint.clear()

    def wake_reactor(self) -> None:
        """Let the reactor run again; first restart pynetdicom's idle timer (the requests answered here were
        traffic it did not see, and the reactor looks at that timer before the DUL thread would restart it)."""
        if self.assoc is not None:
            self.assoc.dul._idle_timer.restart()
            self.assoc._reactor_checkpoint.set()

    def take_responses(self) -> bytes:
        """The responses to send now, joined (empty when there are none)."""
        with self._lock:
            responses, self.responses = self.responses, []
        return b"".join(responses)

    def close(self) -> None:
        """Delete a data set still arriving (the connection ended; it was never acknowledged)."""
        with self._lock:
            self._closed = True
            self._request = None
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
        """Read the next PDU for pynetdicom, answering the C-STORE requests that P-DATA completes. While the
        sender's next PDU follows within :data:`NEXT_PDU_WAIT_S`, PDUs with nothing left for pynetdicom are not
        handed to it at all; otherwise it gets an empty P-DATA-TF."""
        try:
            self._next_pdu_for_pynetdicom()
        finally:
            self.spool.wake_reactor()

    def _next_pdu_for_pynetdicom(self) -> None:
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
            self._send_responses()
            if filtered is body:
                self._out = memoryview(b"".join((header, body)))
                return
            if filtered:
                self._out = memoryview(b"".join((_PDU_HEADER.pack(P_DATA_TF, 0, len(filtered)), filtered)))
                return
            self.spool.pause_reactor()
            if not select.select([self._sock], [], [], NEXT_PDU_WAIT_S)[0]:
                self._out = memoryview(_EMPTY_P_DATA)
                return

    def _send_responses(self) -> None:
        """Send the responses of what was stored (a peer that has gone resends what it saw unanswered)."""
        responses = self.spool.take_responses()
        if responses:
            try:
                self._sock.sendall(responses)
            except OSError as exc:
                logger.warning("listener: a C-STORE response could not be sent (%s)", type(exc).__name__)

    def _read(self, size: int, into: memoryview) -> memoryview:
        """Read ``size`` bytes into ``into``; fewer if the connection ends."""
        got = 0
        while got < size:
            n = self._sock.recv_into(into[got:size])
            if not n:
                break
            got += n
        if _QUICKACK is not None:  # acknowledge at once: a sender with Nagle on waits for it before the next PDU
            self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        return into[:got]

    def close(self) -> None:
        self.spool.close()
        self._sock.close()
