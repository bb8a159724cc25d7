"""The placing fields of an encoded data set, found by walking its element headers (no pydicom objects).

The listener needs four values of each received instance (SOP Class and Instance UID, Modality, Study
Instance UID), all in groups 0008 and 0020, before the pixel data. pydicom's partial read builds a data set
and an element object per header on the way: about 0.2 ms for a CT slice. :func:`scan_placing_fields` reads
only the headers' tags and lengths, skipping values (and sequences, defined length or not), for the Little Endian
transfer syntaxes; anything else, or anything it does not expect, returns None and the caller reads the data set
with pydicom (:func:`tasks.sources.receiver.read_dataset_fields`). The tests compare both on every readable file
of pydicom's test data.
"""

from __future__ import annotations

import functools
import struct

from pydicom.uid import UID

PLACING = {
    0x00080016: "SOPClassUID",
    0x00080018: "SOPInstanceUID",
    0x00080060: "Modality",
    0x0020000D: "StudyInstanceUID",
}
_LAST = 0x0020000D
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_TAG_LENGTH = struct.Struct("<HHL")
_EXPLICIT = struct.Struct("<HH2sH")  # group, element, VR, 2-byte length (long VRs: reserved, then a 4-byte one)
_LONG_LENGTH = struct.Struct("<L")
_SHORT_VRS = frozenset(
    {
        b"AE",
        b"AS",
        b"AT",
        b"CS",
        b"DA",
        b"DS",
        b"DT",
        b"FL",
        b"FD",
        b"IS",
        b"LO",
        b"LT",
        b"PN",
        b"SH",
        b"SL",
        b"SS",
        b"ST",
        b"TM",
        b"UI",
        b"UL",
        b"US",
    }
)
_MAX_DEPTH = 16


class _Unexpected(Exception):
    """Something the scan does not read; pydicom will."""


def scan_placing_fields(data: bytes | bytearray | memoryview, transfer_syntax: str) -> dict[str, str] | None:
    """``{keyword: value}`` of the placing fields present before the pixel data (missing ones are absent), or
    None when the data set is not one this scan reads (big endian, deflated, malformed, an implicit-VR
    sequence inside an explicit one)."""
    readable, explicit = _encoding(transfer_syntax)
    if not readable:
        return None
    view = memoryview(data).cast("B")
    found: dict[str, str] = {}
    try:
        _scan(view, 0, len(view), explicit, found, top=True, depth=0)
    except (_Unexpected, struct.error, UnicodeDecodeError):
        return None
    return found


@functools.lru_cache(maxsize=64)
def _encoding(transfer_syntax: str) -> tuple[bool, bool]:
    """Whether the scan reads data sets in this transfer syntax, and whether their VRs are explicit (pydicom's
    view of the syntax, looked up once per syntax: constructing a UID validates it, ~20 µs)."""
    syntax = UID(transfer_syntax)
    return syntax.is_little_endian and not syntax.is_deflated, not syntax.is_implicit_VR


def _scan(
    view: memoryview, offset: int, end: int, explicit: bool, found: dict[str, str], *, top: bool, depth: int
) -> int:
    """Walk elements from ``offset`` up to ``end`` (or an item delimiter); note placing fields at the top
    level; return the offset after what was walked (top level: where the scan stopped). One header read per
    element (a CT header has ~120 before the Study Instance UID), so the loop is kept flat."""
    if depth > _MAX_DEPTH:
        raise _Unexpected("nesting")
    implicit_header, explicit_header, long_length = (
        _TAG_LENGTH.unpack_from,
        _EXPLICIT.unpack_from,
        _LONG_LENGTH.unpack_from,
    )
    while offset < end:
        vr = None
        if explicit:
            group, element, vr, length = explicit_header(view, offset)
            if group == 0xFFFE:  # item and delimiters: tag and a 4-byte length, no VR
                group, element, length = implicit_header(view, offset)
                vr, value = None, offset + 8
            elif vr in _LONG_VRS:
                (length,), value = long_length(view, offset + 8), offset + 12
            elif vr in _SHORT_VRS:
                value = offset + 8
            else:
                raise _Unexpected("not an explicit VR")
        else:
            group, element, length = implicit_header(view, offset)
            value = offset + 8
        tag = group << 16 | element
        if tag == _ITEM_END:
            if top:
                raise _Unexpected("item delimiter at the top level")
            return value
        if top and tag > _LAST:
            return offset
        if length == _UNDEFINED:
            if explicit and vr != b"SQ":
                raise _Unexpected("undefined length outside a sequence")
            offset = _skip_sequence(view, value, end, explicit, depth + 1)
            continue
        if value + length > end:
            raise _Unexpected("value past the end")
        if top and tag in PLACING:
            found[PLACING[tag]] = bytes(view[value : value + length]).decode("ascii").rstrip("\x00 ").strip()
        offset = value + length
    if not top:
        raise _Unexpected("item without its delimiter")
    return offset


def _skip_sequence(view: memoryview, offset: int, end: int, explicit: bool, depth: int) -> int:
    """The offset after an undefined-length sequence whose items start at ``offset``."""
    while offset + 8 <= end:
        group, element, length = _TAG_LENGTH.unpack_from(view, offset)
        tag, offset = group << 16 | element, offset + 8
        if tag == _SEQUENCE_END:
            return offset
        if tag != _ITEM:
            raise _Unexpected("not an item")
        if length == _UNDEFINED:
            offset = _scan(view, offset, end, explicit, {}, top=False, depth=depth)
        elif offset + length > end:
            raise _Unexpected("item past the end")
        else:
            offset += length
    raise _Unexpected("sequence without its delimiter")
