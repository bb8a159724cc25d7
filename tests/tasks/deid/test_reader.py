"""read_dicom turns every unreadable or unsafe input into an InputError with its quarantine reason."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from tasks.deid.reader import read_dicom
from tasks.errors import InputError, QuarantineReason

LIMIT = 1 << 30


def ct_bytes() -> bytes:
    return Path(get_testdata_file("CT_small.dcm")).read_bytes()


def rewrite(tmp_path: Path, **attrs) -> Path:
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    for k, v in attrs.items():
        setattr(ds, k, v)
    path = tmp_path / "x.dcm"
    ds.save_as(path)
    return path


def wrong_length() -> bytes:
    data = bytearray(ct_bytes())
    i = data.find(struct.pack("<HH", 0x0008, 0x0060) + b"CS")
    data[i + 6 : i + 8] = struct.pack("<H", 0xFFF0)  # Modality swallows the rest of the file
    return bytes(data)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", QuarantineReason.NOT_DICOM),
        (b"Patient DOE JOHN, MRN 123\n" * 20, QuarantineReason.NOT_DICOM),
        (ct_bytes()[:20000], QuarantineReason.TRUNCATED),
        (wrong_length(), QuarantineReason.TRUNCATED),
        (Path(get_testdata_file("DICOMDIR")).read_bytes(), QuarantineReason.DICOMDIR),
        (Path(get_testdata_file("emri_small_jpeg_2k_lossless_too_short.dcm")).read_bytes(), QuarantineReason.TRUNCATED),
    ],
)
def test_bad_bytes(tmp_path, content, reason):
    path = tmp_path / "DOE_JOHN.dcm"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_dicom(path, max_pixel_bytes=LIMIT)
    assert info.value.reason == reason
    assert "DOE" not in str(info.value)


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({"Rows": 65535, "Columns": 65535, "NumberOfFrames": 50000}, QuarantineReason.TOO_LARGE),
        ({"NumberOfFrames": 40}, QuarantineReason.TRUNCATED),
        ({"NumberOfFrames": "-5"}, QuarantineReason.CORRUPT_HEADER),
    ],
)
def test_declared_sizes_checked_before_decoding(tmp_path, attrs, reason):
    with pytest.raises(InputError) as info:
        read_dicom(rewrite(tmp_path, **attrs), max_pixel_bytes=LIMIT)
    assert info.value.reason == reason


def test_missing_file_and_preamble_less(tmp_path):
    with pytest.raises(InputError) as info:
        read_dicom(tmp_path / "absent", max_pixel_bytes=LIMIT)
    assert info.value.reason == QuarantineReason.UNREADABLE
    ds = read_dicom(Path(get_testdata_file("ExplVR_LitEndNoMeta.dcm")), max_pixel_bytes=LIMIT)
    assert ds.SOPInstanceUID
