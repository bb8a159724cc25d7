"""The receiver's fast header read: placing an instance from the header read only up to the Study Instance UID
(whole Part-10 files, and a C-STORE dataset without file meta in its transfer syntax) gives the same placement
as a full read, on every pydicom-data file that has a SOP Instance UID."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.filereader import _read_file_meta_info, read_preamble

from tasks.sources.inbox import Inbox
from tasks.sources.receiver import Receiver, read_dataset_fields, read_placing_fields
from tasks.sources.studies import StudyTracker

KEY = b"r" * 32


def _full(path: str) -> pydicom.Dataset | None:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # not DICOM, or broken beyond reading: not part of the comparison
        return None
    return ds if str(ds.get("SOPInstanceUID", "") or "").strip() else None


def _dataset_part(path: str) -> tuple[bytes, str] | None:
    """The encoded dataset behind the file meta, and its transfer syntax (what a C-STORE request carries)."""
    with open(path, "rb") as fh:
        try:
            read_preamble(fh, False)
            meta = _read_file_meta_info(fh)
        except Exception:
            return None
        syntax = meta.get("TransferSyntaxUID")
        return (fh.read(), str(syntax)) if syntax else None


@pytest.fixture
def receiver(tmp_path: Path) -> Receiver:
    return Receiver(Inbox(tmp_path / "inbox"), KEY, StudyTracker(60), max_staged_bytes=1 << 30)


def test_a_partial_header_read_places_every_instance_as_a_full_read(receiver: Receiver) -> None:
    compared = with_meta = 0
    for path in get_testdata_files():
        full = _full(path)
        if full is None:
            continue
        expected = receiver.place(full)
        assert receiver.place(read_placing_fields(Path(path))) == expected, Path(path).name
        assert receiver.place(read_placing_fields(Path(path).read_bytes())) == expected, Path(path).name
        compared += 1
        part = _dataset_part(path)
        if part is not None and full.file_meta.get("TransferSyntaxUID"):
            data, syntax = part
            stream = io.BytesIO(data)
            fields = read_dataset_fields(stream, syntax)
            assert stream.tell() == 0
            assert receiver.place(fields, expected.sop_instance_uid) == expected, Path(path).name
            with_meta += 1
    assert compared > 50 and with_meta > 50  # the comparison covered pydicom's test files, not a handful


def test_unreadable_input_gives_no_fields() -> None:
    assert read_placing_fields(b"not dicom at all") is None
    assert read_dataset_fields(io.BytesIO(b"\x08\x00"), "1.2.840.10008.1.2.1.99") is None  # unknown syntax
    assert read_dataset_fields(io.BytesIO(b"\x01\x02\x03"), "1.2.840.10008.1.2.1.99") is None


def test_an_instance_is_written_from_its_parts_without_joining(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox")
    token, digest = "a" * 32, "b" * 40
    body = bytearray(b"x" * 1000)
    size = inbox.write(token, digest, b"\0" * 128, b"DICM", memoryview(body))
    written = inbox.study_dir(token) / f"{digest}.dcm"
    assert size == 1132 and written.read_bytes() == b"\0" * 128 + b"DICM" + bytes(body)
    assert [p.name for p in inbox.study_dir(token).iterdir()] == [written.name]  # no temporary left


def test_a_study_folder_removed_by_a_claim_is_made_again(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox")
    token = "c" * 32
    inbox.write(token, "1" * 40, b"DICMfirst")
    with inbox.claim(token, "run-1") as claim:
        assert claim is not None and [p.name for p in claim.glob("*.dcm")] == ["1" * 40 + ".dcm"]
    assert not inbox.study_dir(token).exists()  # the finished claim removed the emptied folder
    inbox.write(token, "2" * 40, b"DICMlate")  # the inbox still remembers the folder: the write notices and retries
    assert (inbox.study_dir(token) / f"{'2' * 40}.dcm").read_bytes() == b"DICMlate"
    assert not [p for p in inbox.root.rglob("*") if p.name.startswith(".medflow-tmp-")]
