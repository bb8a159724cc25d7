"""The placing fields found by walking element headers are pydicom's, on every readable test file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_files
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from tasks.sources.header_scan import scan_placing_fields
from tasks.sources.receiver import _PLACING, _text, read_dataset_fields

IMPLICIT, EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"


def _pydicom(body: bytes, syntax: str) -> dict[str, str] | None:
    ds = read_dataset_fields(io.BytesIO(body), syntax)
    return None if ds is None else {k: _text(ds, k) for k in _PLACING}


def _scanned(body: bytes, syntax: str) -> dict[str, str] | None:
    found = scan_placing_fields(body, syntax)
    return None if found is None else {k: found.get(k, "") for k in _PLACING}


def _bodies() -> list[tuple[str, str, bytes]]:
    bodies = []
    for path in get_testdata_files():
        try:
            with Path(path).open("rb") as fh:
                read_preamble(fh, False)
                syntax = str(_read_file_meta_info(fh).TransferSyntaxUID)
                bodies.append((Path(path).name, syntax, fh.read()))
        except Exception:  # not a Part-10 file (raw data sets, broken ones on purpose)
            continue
    return bodies


def test_every_little_endian_test_file_gives_pydicoms_fields() -> None:
    compared, fell_back, bodies = 0, [], _bodies()
    for name, syntax, body in bodies:
        scanned = _scanned(body, syntax)
        if scanned is None:
            fell_back.append(name)
            continue
        assert scanned == _pydicom(body, syntax), name
        compared += 1
    assert compared >= 100  # pydicom's and pydicom-data's files
    little_endian = [n for n, s, _ in bodies if UID(s).is_little_endian and not UID(s).is_deflated]
    assert len(set(fell_back) & set(little_endian)) <= 2, fell_back  # the others are big endian or deflated


def _with_sequences(undefined: bool) -> Dataset:
    """A header with nested sequences (defined or undefined length) before the placing fields and inside
    them an element that looks like one."""
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "9.9.9"
    inner.SOPInstanceUID = "8.8.8"  # not at the top level: not the instance's
    item = Dataset()
    item.CodeValue = "X"
    item.ReferencedImageSequence = Sequence([inner])
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.Modality = "CT"
    ds.ProcedureCodeSequence = Sequence([item, Dataset()])
    ds.StudyInstanceUID = "1.2.3.4"
    ds.Rows = 2
    if undefined:
        for sequence in (ds.ProcedureCodeSequence, item.ReferencedImageSequence):
            sequence.is_undefined_length = True
            for member in sequence:
                member.is_undefined_length_sequence_item = True
    return ds


@pytest.mark.parametrize("undefined", [False, True])
@pytest.mark.parametrize("syntax", [IMPLICIT, EXPLICIT])
def test_sequences_before_the_fields_are_skipped(undefined: bool, syntax: str) -> None:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, syntax == IMPLICIT
    write_dataset(buffer, _with_sequences(undefined))
    body = buffer.getvalue()
    expected = {
        "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
        "SOPInstanceUID": "1.2.3.4.5",
        "Modality": "CT",
        "StudyInstanceUID": "1.2.3.4",
    }
    assert _scanned(body, syntax) == expected == _pydicom(body, syntax)
    assert scan_placing_fields(body[: len(body) // 3], syntax) is None  # cut inside the sequence: pydicom's turn


def test_syntaxes_it_does_not_read_are_left_to_pydicom() -> None:
    assert scan_placing_fields(b"", "1.2.840.10008.1.2.2") is None  # Explicit VR Big Endian
    assert scan_placing_fields(b"", "1.2.840.10008.1.2.1.99") is None  # Deflated
    assert scan_placing_fields(b"\x08\x00\x16\x00UI\x06\x00", EXPLICIT) is None  # value past the end
