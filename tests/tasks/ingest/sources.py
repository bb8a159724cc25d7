"""Small real inputs for ingest tests: pydicom-data files and a CT series synthesised from CT_small.dcm."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

KEY_HEX = "3f" * 32


def ct_series(folder: Path, n: int = 4, spacing: float = 2.0) -> list[Path]:
    """``n`` copies of CT_small.dcm along the slice normal, with new SOP UIDs and one new series UID."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    paths = []
    for k in range(n):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(iop[:3], iop[3:])
        ds.ImagePositionPatient = [float(v) for v in np.asarray(ds.ImagePositionPatient, float) + k * spacing * normal]
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        path = folder / f"ct_{(k * 7) % n}.dcm"  # file order differs from slice order
        ds.save_as(path)
        paths.append(path)
    return paths


def overflowing_ct_series(folder: Path, n: int = 3) -> list[Path]:
    """A CT series whose RescaleSlope pushes voxels past int16: assembling it logs a clipping warning."""
    paths = ct_series(folder, n=n)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.RescaleSlope = 1000
        ds.save_as(path)
    return paths


def copy_testdata(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        target = folder / name
        shutil.copy(get_testdata_file(name), target)
        out.append(target)
    return out


def write_key(path: Path) -> Path:
    path.write_text(KEY_HEX)
    path.chmod(0o600)
    return path
