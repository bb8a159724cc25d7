"""Originals with planted unique PHI, and a dataset folder to audit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tasks.audit.table import load_table

PLANTED = {
    "name": "Zyqvarn^Oblestine",
    "pid": "MRN8827361",
    "date": "19610407",
    "institution": "Quillmore Vantage Infirmary",
    "nested_uid": "1.2.826.0.1.3680043.8.498.77120391",
    "private": "Xertavian private note",
}


@pytest.fixture
def originals(tmp_path: Path) -> Path:
    """Two real files with planted values in plain, nested and private attributes."""
    src = tmp_path / "originals"
    src.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = PLANTED["name"]
    ds.PatientID = PLANTED["pid"]
    ds.PatientBirthDate = PLANTED["date"]
    ds.InstitutionName = PLANTED["institution"]
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = PLANTED["nested_uid"]
    ds.ReferencedImageSequence = Sequence([item])
    block = ds.private_block(0x0029, "MEDFLOW TEST", create=True)
    block.add_new(0x01, "LO", PLANTED["private"])
    ds.save_as(src / "ct.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), src / "mr.dcm")
    return src


@pytest.fixture
def clean_dataset(tmp_path: Path) -> Path:
    """A dataset folder with nothing identifying: a de-identified-looking DICOM and a few text files."""
    out = tmp_path / "dataset"
    out.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    table = load_table()
    for elem in list(ds):
        if elem.tag.is_private or table.lookup(int(elem.tag)) is not None:
            del ds[elem.tag]
    ds.PatientName = "2c1f0a"
    ds.PatientID = "5f3a9e7d1c"
    ds.StudyDate = "20990101"
    ds.StudyInstanceUID = "2.25.1234"
    ds.SeriesInstanceUID = "2.25.5678"
    ds.SOPInstanceUID = "2.25.91011"
    ds.file_meta.MediaStorageSOPInstanceUID = "2.25.91011"
    ds.FrameOfReferenceUID = "2.25.121314"
    ds.PatientIdentityRemoved = "YES"
    ds.save_as(out / "x.dcm")
    (out / "quarantine.jsonl").write_text('{"source_id": "ab12", "reason": "truncated"}\n')
    (out / "runs").mkdir()
    (out / "runs" / "log.txt").write_text("processed 2 files\n")
    return out
