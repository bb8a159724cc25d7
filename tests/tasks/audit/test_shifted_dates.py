"""A date the de-identification itself writes must not fail the audit; other original dates still count."""

from datetime import date, timedelta
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tasks.audit.collect import collect_patterns, shifted_date_variants

OFFSET = {"PATIENT-A-1234": -400, "PATIENT-B-5678": -900}


def _original(path: Path, patient_id: str, study_date: str) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.PatientID = patient_id
    ds.StudyDate = study_date
    ds.save_as(path, enforce_file_format=True)


def _shift(ds) -> int:
    return OFFSET[str(ds.PatientID)]


def test_shifted_date_variants_moves_only_dates() -> None:
    assert "20000101" in shifted_date_variants("20000111", -10)
    assert "2000-01-01" in shifted_date_variants("20000111", -10)
    assert shifted_date_variants("20001345", -10) == set()
    assert shifted_date_variants("PATIENTX", -10) == set()


def test_dates_produced_by_the_shift_are_dropped_others_kept(tmp_path: Path) -> None:
    a_date = date(2020, 5, 17)
    b_date = a_date + timedelta(days=OFFSET["PATIENT-A-1234"])  # B's real date = A's shifted date
    _original(tmp_path / "a", "PATIENT-A-1234", a_date.strftime("%Y%m%d"))
    _original(tmp_path / "b", "PATIENT-B-5678", b_date.strftime("%Y%m%d"))

    strict = collect_patterns(tmp_path, include_paths=False)
    keyed = collect_patterns(tmp_path, include_paths=False, date_shift=_shift)

    b_text = b_date.strftime("%Y%m%d")
    assert b_text in strict.labels  # without the key every original date is searched
    assert b_text not in keyed.labels  # indistinguishable from A's legitimately shifted date
    assert a_date.strftime("%Y%m%d") in keyed.labels  # a real date nobody's shift produces is still searched
    assert "patient-a-1234" in keyed.labels or "PATIENT-A-1234".lower() in {k.lower() for k in keyed.labels}
