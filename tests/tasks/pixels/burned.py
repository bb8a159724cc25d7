"""Real pydicom-data CT, MR, CR and an RGB capture labelled CT, each with a name burned into its pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tasks.pixels.synthetic import burn_in

NAME = "DOE^JOHN 1234567"


@dataclass
class Burned:
    """One written input: its path, its pixels as written (frames first), and the ink of the name (None: clean)."""

    path: Path
    pixels: np.ndarray
    ink: np.ndarray | None


def _fresh(name: str) -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.pop("BurnedInAnnotation", None)  # as in the red-team files: no attribute says there is text
    return ds


def _crop(ds: pydicom.Dataset, size: int, top: int, left: int) -> None:
    """``size``² pixels of a large radiograph (real pixels, test-sized)."""
    a = ds.pixel_array[top : top + size, left : left + size].copy()
    ds.Rows = ds.Columns = size
    ds.PixelData = a.tobytes()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian


def write_inputs(folder: Path) -> dict[str, Burned]:
    """CT, MR, CR and an RGB SC labelled CT with a burned-in name, and a clean CT slice, under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Burned] = {}
    specs = [
        ("ct", "693_UNCR.dcm", (70, 60), 0.5, 1),
        ("mr", "MR-SIEMENS-DICOM-WithOverlays.dcm", (300, 460), 0.5, 1),
        ("cr", "RG3_UNCR.dcm", (205, 200), 0.6, 2),
        ("sc_ct", "SC_rgb.dcm", (6, 60), 0.45, 1),
        ("clean_ct", "CT_small.dcm", None, 0, 0),
    ]
    for label, name, org, scale, thickness in specs:
        ds = _fresh(name)
        if label == "cr":
            _crop(ds, 384, 1000, 800)  # the lower leg and the dark background beside it
        if label == "sc_ct":
            ds.Modality = "CT"
        ink = burn_in(ds, NAME if label in ("ct", "mr") else "DOE^JOHN", org, scale, thickness) if org else None
        path = folder / f"{label}.dcm"
        ds.save_as(path, enforce_file_format=True)
        arr = pydicom.dcmread(path).pixel_array
        out[label] = Burned(path, arr[None] if int(ds.get("NumberOfFrames") or 1) == 1 else arr, ink)
    return out
