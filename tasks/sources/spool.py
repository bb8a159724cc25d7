"""Write a large C-STORE data set to disk while it arrives, so that acknowledging it needs only the syncs.

pynetdicom hands a C-STORE to its handler only once the whole data set has been received and assembled in
memory; writing several MB then and waiting for them to reach the disk happens while the sender waits for the
response. A :class:`Spool` (one per association, fed from ``EVT_PDU_RECV`` on the association's reader
thread) instead writes each data set fragment, behind the file meta header, to a temporary file in the inbox
as its P-DATA PDU is decoded, and starts the disk writing of what it has written (``POSIX_FADV_DONTNEED``
starts the write-back of dirty pages) so that the final ``fdatasync`` waits only for the tail.

Only data sets that span more than one PDU are spooled (a CT slice in one PDU is written by the handler in one
``writev``, which is as quick). The handler takes the spooled file with :meth:`Spool.take`, which checks it
against the request (Message ID, SOP Instance UID, data set length); on any mismatch or write error the
handler writes the data set pynetdicom assembled instead, so spooling can only make an acknowledgement faster,
never different. A spooled file is an ordinary temporary (:data:`tasks.atomic.TEMP_PREFIX`): a crash leaves
it for the next start to delete, and it is never acknowledged before it is fsynced and renamed into place.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.uid import UID
from pynetdicom.dsutils import create_file_meta, decode, encode_file_meta
from pynetdicom.pdu import P_DATA_TF

from tasks.atomic import TEMP_PREFIX

logger = logging.getLogger(__name__)

PREAMBLE = b"\x00" * 128 + b"DICM"
C_STORE_RQ = 0x0001
NO_DATA_SET = 0x0101
WRITEBACK_BYTES = 1 << 20
"""Start the disk write of what has been spooled each time this much more has been written."""
_FADVISE = getattr(os, "posix_fadvise", None)


@dataclass
class Spooled:
    """One data set being written (or written) to ``path``; ``fd`` is open until :meth:`finish`."""

    path: Path
    fd: int
    message_id: int
    sop_instance_uid: str
    header_bytes: int
    data_bytes: int = 0
    flushed: int = 0
    _closed: bool = field(default=False, repr=False)

    def write(self, data: memoryview) -> None:
        """Append one fragment; start the write-back every :data:`WRITEBACK_BYTES`."""
        while data:
            written = os.write(self.fd, data)
            data = data[written:]
            self.data_bytes += written
        end = self.header_bytes + self.data_bytes
        if _FADVISE is not None and end - self.flushed >= WRITEBACK_BYTES:
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
    """The data sets of one association's C-STORE requests, written to ``folder`` as they arrive."""

    def __init__(self, folder: Path, transfer_syntaxes: dict[int, str]) -> None:
        self.folder = folder
        self.transfer_syntaxes = transfer_syntaxes  # accepted presentation context ID -> transfer syntax UID
        self._command = bytearray()
        self._request: tuple[int, str, bytes] | None = None  # message ID, SOP Instance UID, header
        self._current: Spooled | None = None
        self._done: deque[Spooled] = deque()
        self._lock = threading.Lock()
        self._closed = False

    def on_pdu(self, pdu: object) -> None:
        """Take one received PDU (the association's reader thread); never raises."""
        if not isinstance(pdu, P_DATA_TF):
            return
        with self._lock:
            if self._closed:
                return
            try:
                for item in pdu.presentation_data_value_items:
                    self._on_fragment(int(item.presentation_context_id or 0), memoryview(item.presentation_data_value))
            except Exception as exc:  # a spooling bug must only cost the fallback, never the association
                logger.warning("listener: spooling stopped for one instance (%s)", type(exc).__name__)
                self._fail()

    def _on_fragment(self, context_id: int, value: memoryview) -> None:
        control, data = value[0], value[1:]
        if control & 1:  # command fragment
            self._fail()  # a new message: whatever was being spooled is incomplete
            self._command += data
            if control & 2:
                self._request = self._store_request(context_id, bytes(self._command))
                self._command.clear()
            return
        current = self._current
        if current is None:
            if self._request is None or control & 2:  # not a C-STORE, or the whole data set in one fragment
                self._request = None
                return
            current = self._open(*self._request)
            self._request = None
            if current is None:
                return
        try:
            current.write(data)
        except OSError:
            self._fail()
            return
        if control & 2:
            self._current = None
            self._done.append(current)

    def _store_request(self, context_id: int, command: bytes) -> tuple[int, str, bytes] | None:
        """Message ID, SOP Instance UID and the Part-10 header of a C-STORE request with a data set."""
        cs = decode(io.BytesIO(command), True, True)
        if cs.get("CommandField") != C_STORE_RQ or cs.get("CommandDataSetType", NO_DATA_SET) == NO_DATA_SET:
            return None
        syntax = self.transfer_syntaxes.get(context_id)
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
        self._current = spooled
        try:
            view = memoryview(header)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            self._fail()
            return None
        return spooled

    def _fail(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            current.discard()

    def take(self, message_id: int, sop_instance_uid: str, data_bytes: int) -> Spooled | None:
        """The spooled data set of this request (whole, same length), else None; older ones are dropped."""
        with self._lock:
            while self._done:
                spooled = self._done.popleft()
                if (spooled.message_id, spooled.sop_instance_uid) == (message_id, sop_instance_uid):
                    if spooled.data_bytes == data_bytes:
                        return spooled
                    spooled.discard()
                    return None
                spooled.discard()
        return None

    def close(self) -> None:
        """Delete what was spooled and not taken (the association ended)."""
        with self._lock:
            self._closed = True
            while self._done:
                self._done.popleft().discard()
            self._fail()
