"""C-STORE messages on the wire, for the listener's answers below pynetdicom (:mod:`tasks.sources.spool`).

pynetdicom reads a request's command through pydicom and builds a response through a primitive, a DIMSE message,
a pydicom data set, P-DATA primitives and a PDU object; the Part-10 header of a staged file goes through a
``FileMetaDataset``. Together about 0.5 ms per instance, half of what a CT slice may cost at dcmtk's rate. All
three are fixed layouts of a few elements (PS3.7 9.3.1, PS3.8 9.3.5, PS3.10 7.1), so they are read and written
here directly. The tests check each against pynetdicom and pydicom: the same fields from the same commands, the
same bytes for the same response and header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
NO_DATA_SET = 0x0101
REFUSED = 0xA700
"""C-STORE status Refused: out of resources (the sender keeps the instance and retries later)."""
PREAMBLE = b"\x00" * 128 + b"DICM"
_IMPLICIT = struct.Struct("<HHL")  # group, element, length
_EXPLICIT_SHORT = struct.Struct("<HH2sH")  # group, element, VR, length
_EXPLICIT_LONG = struct.Struct("<HH2s2xL")  # group, element, VR, reserved, length
_US = struct.Struct("<H")
_UL = struct.Struct("<L")
_PDU = struct.Struct(">BBLLBB")  # PDU type, reserved, PDU length, item length, context ID, control header
_COMMAND_LAST = 0x03


@dataclass(frozen=True)
class StoreCommand:
    """The fields of a command set that decide whether the listener answers it itself."""

    command_field: int
    message_id: int
    data_set_type: int
    sop_class_uid: str
    sop_instance_uid: str

    @property
    def is_store_with_data_set(self) -> bool:
        return self.command_field == C_STORE_RQ and self.data_set_type != NO_DATA_SET


_WANTED = {
    0x0002: "sop_class_uid",
    0x0100: "command_field",
    0x0110: "message_id",
    0x0800: "data_set_type",
    0x1000: "sop_instance_uid",
}
_UIDS = {0x0002, 0x1000}


def read_command(command: bytes | memoryview) -> StoreCommand | None:
    """The fields of an encoded command set (group 0000, Implicit VR Little Endian); None when it is not a
    well-formed one with all five (pynetdicom then judges it)."""
    values: dict[str, int | str] = {}
    offset, end = 0, len(command)
    while offset + 8 <= end:
        group, element, length = _IMPLICIT.unpack_from(command, offset)
        offset += 8
        if group != 0x0000 or offset + length > end:
            return None
        name = _WANTED.get(element)
        if name is not None:
            raw = bytes(command[offset : offset + length])
            if element in _UIDS:
                values[name] = raw.rstrip(b"\x00 ").decode("ascii", "replace")
            elif length == 2:
                values[name] = _US.unpack(raw)[0]
            else:
                return None
        offset += length
    if offset != end or len(values) != len(_WANTED):
        return None
    return StoreCommand(**values)  # type: ignore[arg-type]


def _implicit(element: int, value: bytes) -> bytes:
    return _IMPLICIT.pack(0x0000, element, len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def store_response_command(message_id: int, sop_class_uid: str, sop_instance_uid: str, status: int) -> bytes:
    """The encoded command set of a C-STORE-RSP (no data set), group length first."""
    body = b"".join(
        (
            _implicit(0x0002, _uid(sop_class_uid)),
            _implicit(0x0100, _US.pack(C_STORE_RSP)),
            _implicit(0x0120, _US.pack(message_id)),
            _implicit(0x0800, _US.pack(NO_DATA_SET)),
            _implicit(0x0900, _US.pack(status)),
            _implicit(0x1000, _uid(sop_instance_uid)),
        )
    )
    return _implicit(0x0000, _UL.pack(len(body))) + body


def store_response_pdu(
    context_id: int, message_id: int, sop_class_uid: str, sop_instance_uid: str, status: int
) -> bytes:
    """A P-DATA-TF PDU carrying the whole C-STORE-RSP as one command fragment."""
    command = store_response_command(message_id, sop_class_uid, sop_instance_uid, status)
    item = len(command) + 2
    return _PDU.pack(0x04, 0x00, item + 4, item, context_id, _COMMAND_LAST) + command


def _explicit(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return _EXPLICIT_LONG.pack(0x0002, element, vr, len(value)) + value
    return _EXPLICIT_SHORT.pack(0x0002, element, vr, len(value)) + value


def _text(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b" " if len(raw) % 2 else raw


def part10_header(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> bytes:
    """Preamble, prefix and File Meta Information of a staged instance, as pynetdicom's ``create_file_meta``
    and ``encode_file_meta`` write them (Explicit VR Little Endian, group length first)."""
    body = b"".join(
        (
            _explicit(0x0001, b"OB", b"\x00\x01"),
            _explicit(0x0002, b"UI", _uid(sop_class_uid)),
            _explicit(0x0003, b"UI", _uid(sop_instance_uid)),
            _explicit(0x0010, b"UI", _uid(transfer_syntax)),
            _explicit(0x0012, b"UI", _uid(PYNETDICOM_IMPLEMENTATION_UID)),
            _explicit(0x0013, b"SH", _text(PYNETDICOM_IMPLEMENTATION_VERSION)),
        )
    )
    return PREAMBLE + _explicit(0x0000, b"UL", _UL.pack(len(body))) + body
