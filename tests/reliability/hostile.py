"""Hostile and broken inputs made from real files: each function writes one case and says what it is.

Unreadable files: the tests run as root, so ``chmod 000`` does not stop a read. Unreadable inputs are made
as a FIFO (``open`` + ``read`` would block forever: a reader must check the file type first), a dangling
symlink, a symlink loop and a directory named like a DICOM file.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

BASES = ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "US1_J2KR.dcm")


def base_bytes(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def _explicit_le(ds_name: str = "CT_small.dcm") -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file(ds_name))


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    group, elem = tag >> 16, tag & 0xFFFF
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OF", b"OD", b"OL", b"OV"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def _header_until_pixels(name: str = "CT_small.dcm") -> bytes:
    """File bytes up to (not including) the Pixel Data element of an explicit VR little endian file."""
    data = base_bytes(name)
    ds = pydicom.dcmread(get_testdata_file(name), defer_size=256)
    return data[: ds._dict[0x7FE00010].value_tell - 12]


def nested_sequences(depth: int) -> bytes:
    """A header followed by ``depth`` nested undefined-length sequences (properly closed)."""
    open_ = b""
    for _ in range(depth):
        open_ += struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
        open_ += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close = (struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)) * depth
    return _header_until_pixels() + open_ + close


def unclosed_item() -> bytes:
    """An undefined-length sequence whose item never closes before the end of the file."""
    body = struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF)
    body += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    body += _element(0x00081150, b"UI", b"1.2.840.10008.5.1.4.1.1.2\x00")
    body += _element(0x00081155, b"UI", b"1.2.3.4.5.6.7.8.9\x00")
    return _header_until_pixels() + body


def _rewrite(name: str, **changes: object) -> bytes:
    from io import BytesIO

    ds = _explicit_le(name)
    for key, value in changes.items():
        setattr(ds, key, value)
    buf = BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def wrong_vr() -> bytes:
    """PatientName's VR bytes replaced by a bogus VR, and a US element with an odd length."""
    data = bytearray(base_bytes("CT_small.dcm"))
    i = data.find(struct.pack("<HH", 0x0010, 0x0010) + b"PN")
    data[i + 4 : i + 6] = b"ZZ"
    j = data.find(struct.pack("<HH", 0x0028, 0x0010) + b"US")
    data[j + 6 : j + 8] = struct.pack("<H", 3)
    return bytes(data)


def wrong_length() -> bytes:
    """An element length far past the end of the file."""
    data = bytearray(base_bytes("CT_small.dcm"))
    i = data.find(struct.pack("<HH", 0x0008, 0x0060) + b"CS")
    data[i + 6 : i + 8] = struct.pack("<H", 0xFFF0)
    return bytes(data)


def cases() -> dict[str, bytes]:
    """Name -> file content for every byte-level hostile case."""
    ct = base_bytes("CT_small.dcm")
    us = pydicom.dcmread(get_testdata_file("US1_J2KR.dcm"))
    from io import BytesIO

    us.NumberOfFrames = 100000
    us.Rows, us.Columns = 65535, 65535
    buf = BytesIO()
    us.save_as(buf)
    us = pydicom.dcmread(get_testdata_file("US1_J2KR.dcm"))
    us.NumberOfFrames = 100  # 92 MB declared (under the limit), one frame of data
    fewer_frames = BytesIO()
    us.save_as(fewer_frames)
    ds = _explicit_le("CT_small.dcm")
    ds.PixelData = ds.PixelData + ds.PixelData  # longer than declared
    longer = BytesIO()
    ds.save_as(longer)
    ds = _explicit_le("MR_small.dcm")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds[0x00100010].value = b"\xff\xfe\x80bad\xc3"
    badchars = BytesIO()
    ds.save_as(badchars)
    phi_modality = _explicit_le("CT_small.dcm")
    phi_modality.Modality = str(phi_modality.PatientName)  # a value ingest must never quote
    del phi_modality.PixelData
    quoted = BytesIO()
    phi_modality.save_as(quoted)
    return {
        "zero.dcm": b"",
        "modality-carries-phi.dcm": quoted.getvalue(),
        "text.dcm": b"this is not a DICOM file\n" * 10,
        "preamble-only.dcm": bytes(128) + b"DICM",
        "truncated-header.dcm": ct[:400],
        "truncated-pixels.dcm": ct[: len(ct) - 5000],
        "truncated-compressed.dcm": base_bytes("US1_J2KR.dcm")[:60000],
        "wrong-vr.dcm": wrong_vr(),
        "wrong-length.dcm": wrong_length(),
        "unclosed-item.dcm": unclosed_item(),
        "nested-20.dcm": nested_sequences(20),
        "nested-200.dcm": nested_sequences(200),
        "nested-5000.dcm": nested_sequences(5000),
        "claims-gigabytes-native.dcm": _rewrite("CT_small.dcm", Rows=65535, Columns=65535, NumberOfFrames=50000),
        "claims-more-frames.dcm": _rewrite("CT_small.dcm", NumberOfFrames=40),
        "claims-gigabytes-compressed.dcm": buf.getvalue(),
        "claims-more-frames-compressed.dcm": fewer_frames.getvalue(),
        "pixels-longer.dcm": longer.getvalue(),
        "negative-rows.dcm": _rewrite("CT_small.dcm", NumberOfFrames="-5"),
        "bad-charset.dcm": _rewrite("MR_small.dcm", SpecificCharacterSet="ISO_IR 999"),
        "bad-bytes.dcm": badchars.getvalue(),
        "DICOMDIR": Path(get_testdata_file("DICOMDIR")).read_bytes(),
        "good-ct.dcm": ct,
        "good-mr.dcm": base_bytes("MR_small.dcm"),
    }


DEEP_NESTING = ("nested-200.dcm", "nested-5000.dcm")
#: Modality is not a PS3.15-listed attribute, so the Basic Profile keeps it: only ingest's handling of it
#: (never quoting it in a quarantine record) is tested with this case.
NOT_FOR_DEID = ("modality-carries-phi.dcm",)


def write_hostile_folder(folder: Path, exclude: tuple[str, ...] = ()) -> int:
    """Write every case (but ``exclude``) plus special files (symlinks, FIFO, a directory named like a file,
    a symlink to the folder itself) into ``folder``.

    Returns the number of non-directory entries (what a walker lists as files).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in cases().items():
        if name not in exclude:
            (folder / name).write_bytes(content)
    os.symlink(folder / "good-ct.dcm", folder / "link-to-good.dcm")
    os.symlink(folder / "missing.dcm", folder / "dangling.dcm")
    os.symlink(folder / "loop-b.dcm", folder / "loop-a.dcm")
    os.symlink(folder / "loop-a.dcm", folder / "loop-b.dcm")
    os.mkfifo(folder / "fifo.dcm")
    (folder / "directory.dcm").mkdir()
    os.symlink(folder, folder / "directory.dcm" / "loop-to-parent")
    return sum(1 for p in folder.iterdir() if p.is_symlink() or not p.is_dir())
