"""Real pydicom-data files given new UIDs: several studies, series of CT slices with distinct positions."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom import Dataset
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid


def ct_series(folder: Path, slices: int, *, patient: str = "DOE^JANE", prefix: str = "ct") -> list[Path]:
    """``slices`` CT_small slices of one new study and series, 5 mm apart, written to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    paths = []
    for i in range(slices):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.PatientName = patient
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + 5.0 * i]
        ds.SliceLocation = z + 5.0 * i
        path = folder / f"{prefix}{i:03d}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


def new_study(name: str, folder: Path, patient: str) -> Path:
    """A pydicom-data file as the only instance of a new study."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.PatientName = patient
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    path = folder / f"{Path(name).stem}-{ds.SOPInstanceUID[-6:]}.dcm"
    ds.save_as(path)
    return path


def phi_values(paths: list[Path]) -> set[str]:
    """Identifying values of the files: names, ids, UIDs (what must reach no log, name or event)."""
    values: set[str] = set()
    for path in paths:
        ds: Dataset = pydicom.dcmread(path, stop_before_pixels=True)
        values |= {str(ds.PatientName), str(ds.get("PatientID", "")), ds.StudyInstanceUID, ds.SeriesInstanceUID}
        values |= {ds.SOPInstanceUID}
        values |= {part for part in str(ds.PatientName).split("^") if len(part) > 3}
    values.discard("")
    return values
