"""Read one DICOM file defensively: every failure becomes an :class:`InputError` with a quarantine reason.

Sizes are checked before any pixel allocation: the file size against the limit, then the declared
Rows x Columns x Frames x Samples x Bits. Pixel data is never decoded here.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from tasks.errors import InputError, QuarantineReason

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: Headers and compressed data add to the pixel bytes; a file larger than this margin over the limit is refused.
FILE_SIZE_MARGIN = 64 * 1024**2
_TRUNCATION_HINTS = ("End of file", "fewer bytes", "Expected", "truncat")
_PREAMBLE_LESS_STARTS = (b"\x08\x00", b"\x02\x00", b"\x00\x08", b"\x00\x02")


def declared_pixel_bytes(ds: Dataset) -> int:
    """Bytes the decoded pixel data would take, from the header alone (0 when there is no image)."""
    try:
        rows = int(ds.get("Rows", 0) or 0)
        cols = int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 8) or 8)
    except (TypeError, ValueError):
        raise InputError(
            "image dimensions (0028,0010)/(0028,0011)/(0028,0008) are not numbers",
            reason=QuarantineReason.CORRUPT_HEADER,
        ) from None
    if min(rows, cols, frames, samples, bits) < 0:
        raise InputError("negative image dimension in (0028,xxxx)", reason=QuarantineReason.CORRUPT_HEADER)
    return rows * cols * frames * samples * ((bits + 7) // 8)


def _sniff(path: Path) -> bool:
    """True if the file has the Part 10 preamble; raises NOT_DICOM when it cannot be DICOM at all."""
    with path.open("rb") as fh:
        head = fh.read(132)
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    if head[:2] in _PREAMBLE_LESS_STARTS and len(head) >= 8:
        return False
    raise InputError("not a DICOM file (no DICM prefix, no dataset start)", reason=QuarantineReason.NOT_DICOM)


def quiet_pydicom() -> None:
    """Stop pydicom's value validation: its warnings and log lines quote the (identifying) value."""
    settings = pydicom.config.settings
    settings.reading_validation_mode = pydicom.config.IGNORE
    settings.writing_validation_mode = pydicom.config.IGNORE


def read_dicom(path: Path, *, max_pixel_bytes: int) -> Dataset:
    """Parse ``path`` (pixel data kept encoded); raise :class:`InputError` with the reason on any problem."""
    quiet_pydicom()
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise InputError("file cannot be accessed", reason=QuarantineReason.UNREADABLE) from None
    if size == 0:
        raise InputError("empty file", reason=QuarantineReason.NOT_DICOM)
    if size > max_pixel_bytes + FILE_SIZE_MARGIN:
        raise InputError(
            "file larger than the pixel limit (MEDFLOW_MAX_PIXEL_BYTES)", reason=QuarantineReason.TOO_LARGE
        )
    try:
        has_preamble = _sniff(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path, force=not has_preamble)
    except InputError:
        raise
    except InvalidDicomError:
        raise InputError("not a DICOM file", reason=QuarantineReason.NOT_DICOM) from None
    except (EOFError, struct.error):
        raise InputError("file ends inside the dataset", reason=QuarantineReason.TRUNCATED) from None
    except OSError:
        raise InputError("file cannot be read", reason=QuarantineReason.UNREADABLE) from None
    except Exception:  # pydicom raises many types for malformed headers; keep only the chain
        raise InputError("header cannot be parsed", reason=QuarantineReason.CORRUPT_HEADER) from None
    if any(any(h in str(w.message) for h in _TRUNCATION_HINTS) for w in caught):
        raise InputError("file ends before a sequence or item delimiter", reason=QuarantineReason.TRUNCATED)
    check_lengths(ds)
    check_dataset(ds, max_pixel_bytes=max_pixel_bytes)
    return ds


def check_lengths(ds: Dataset) -> None:
    """Refuse an element whose declared length runs past the end of the file.

    pydicom reads such a value short without a warning; the value then holds the rest of the header
    (names, ids) under the wrong tag, so the file is treated as truncated, never released.
    """
    for tag, elem in ds._dict.items():
        raw = isinstance(elem, RawDataElement) and elem.length != 0xFFFFFFFF and elem.value is not None
        if raw and len(elem.value) < elem.length:
            raise InputError(
                f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) is longer than the file",
                reason=QuarantineReason.TRUNCATED,
            )


def transfer_syntax(ds: Dataset) -> UID:
    """The dataset's transfer syntax: from the file meta, else from how it was read."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return UID(ts)
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit in (None, True):
        return pydicom.uid.ImplicitVRLittleEndian
    return pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian


def check_dataset(ds: Dataset, *, max_pixel_bytes: int) -> None:
    """Refuse DICOMDIRs, objects without identity, oversized or truncated native pixel data."""
    meta = getattr(ds, "file_meta", None)
    sop_class = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)
    if str(sop_class or "") == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        raise InputError("DICOMDIR (a media index, not an instance)", reason=QuarantineReason.DICOMDIR)
    if not ds.get("SOPInstanceUID") or not sop_class:
        raise InputError(
            "missing SOP Class/Instance UID (0008,0016)/(0008,0018)", reason=QuarantineReason.CORRUPT_HEADER
        )
    if "PixelData" not in ds:
        return
    expected = declared_pixel_bytes(ds)
    if expected > max_pixel_bytes:
        raise InputError("declared pixel data larger than MEDFLOW_MAX_PIXEL_BYTES", reason=QuarantineReason.TOO_LARGE)
    if expected == 0:
        raise InputError(
            "pixel data without Rows/Columns (0028,0010)/(0028,0011)", reason=QuarantineReason.CORRUPT_HEADER
        )
    if not transfer_syntax(ds).is_compressed:
        stored = len(ds._dict[0x7FE00010].value or b"")
        if int(ds.get("BitsAllocated", 8) or 8) == 1:
            expected = (expected + 7) // 8  # 1-bit data is packed
        if stored < expected:
            raise InputError(
                "native pixel data shorter than Rows x Columns x Frames", reason=QuarantineReason.TRUNCATED
            )
