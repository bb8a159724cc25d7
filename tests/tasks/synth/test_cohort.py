"""``make_cohort`` / ``medflow synth``: contract columns, realistic DICOM, burned-in PHI, determinism."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import JPEGBaseline8Bit, UltrasoundMultiFrameImageStorage
from typer.testing import CliRunner

from flows.cli import app
from tasks.synth import make_cohort
from tasks.synth.cohort import OUTCOME_COLUMNS, TOP_BAR


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    make_cohort(out, patients=6, seed=11, volume_every=3)
    return out


def test_outcomes_follow_the_contract(cohort: Path) -> None:
    table = pd.read_csv(cohort / "outcomes.csv", dtype={"mrn": str})
    assert (
        list(table.columns)
        == OUTCOME_COLUMNS
        == ["mrn", "study_date", "followup_date", "event", "ef", "age", "sex", "group"]
    )
    assert len(table) == 6 and table["mrn"].is_unique
    assert set(table["event"]) <= {0, 1}
    assert (pd.to_datetime(table["followup_date"]) > pd.to_datetime(table["study_date"])).all()
    assert table["ef"].between(15, 78).all() and set(table["sex"]) <= {"M", "F"}
    assert "SYNTHETIC" in (cohort / "README.txt").read_text()


def test_echo_files_are_realistic_us_multiframe_with_phi(cohort: Path) -> None:
    outcomes = pd.read_csv(cohort / "outcomes.csv", dtype={"mrn": str})
    files = sorted((cohort / "dicom").rglob("echo/*.dcm"))
    assert files
    syntaxes = set()
    for path in files:
        ds = pydicom.dcmread(path)
        syntaxes.add(ds.file_meta.TransferSyntaxUID)
        assert ds.SOPClassUID == UltrasoundMultiFrameImageStorage and ds.Modality == "US"
        assert ds.PatientID in set(outcomes["mrn"]) and "^" in str(ds.PatientName)
        assert ds.PatientBirthDate and ds.InstitutionName and ds.AccessionNumber
        fps = 1000.0 / float(ds.FrameTime)
        assert 25 <= fps <= 80 and ds.CineRate == round(fps)
        frames = ds.pixel_array
        assert frames.shape == (int(ds.NumberOfFrames), ds.Rows, ds.Columns) and frames.dtype == np.uint8
        assert frames[:, :TOP_BAR].max() > 200  # burned-in text in the top bar
        assert frames[:, TOP_BAR:].mean() > 10  # and a scan below it
        row = outcomes[outcomes["mrn"] == ds.PatientID].iloc[0]
        assert ds.StudyDate == dt.date.fromisoformat(row["study_date"]).strftime("%Y%m%d")
    assert JPEGBaseline8Bit in syntaxes  # baseline JPEG, decoded by pylibjpeg (encoded with OpenCV)


def test_jpeg_baseline_frames_decode_close_to_the_phantom(cohort: Path) -> None:
    for path in sorted((cohort / "dicom").rglob("echo/*.dcm")):
        ds = pydicom.dcmread(path)
        if ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit:
            assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_10918_1"
            assert (
                len(
                    pydicom.encaps.generate_fragmented_frames(
                        ds.PixelData, number_of_frames=ds.NumberOfFrames
                    ).__next__()
                )
                >= 1
            )
            return
    pytest.fail("no JPEG baseline file in a 6-patient cohort")


def test_volumes_are_slice_series_with_positions(cohort: Path) -> None:
    series = [d for d in (cohort / "dicom").rglob("*") if d.is_dir() and d.name in ("ct", "mr")]
    assert len(series) == 2
    for folder in series:
        slices = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
        z = [float(s.ImagePositionPatient[2]) for s in slices]
        assert np.all(np.diff(z) > 0) and len({s.SeriesInstanceUID for s in slices}) == 1
        assert slices[0].pixel_array.dtype == np.int16 and slices[0].Modality in ("CT", "MR")


def test_same_seed_same_bytes_other_seed_other_cohort(tmp_path: Path) -> None:
    make_cohort(tmp_path / "a", 2, seed=5, volume_every=2)
    make_cohort(tmp_path / "b", 2, seed=5, volume_every=2)
    make_cohort(tmp_path / "c", 2, seed=6, volume_every=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_cli_writes_a_cohort_and_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["synth", str(tmp_path / "out"), "--patients", "2", "--seed", "1", "--volume-every", "0"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "outcomes.csv").exists()
    again = runner.invoke(app, ["synth", str(tmp_path / "out"), "--patients", "2"])
    assert again.exit_code == 2 and "not empty" in " ".join(again.output.split())
