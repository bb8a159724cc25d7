"""The audit searches the local Prefect server's database (SQLite file and WAL) for the originals' values.

A real flow run on the test server takes a planted value as a parameter, the way a source path once reached
the database; the audit finds it there, naming the file and the attribute only. Originals named after
Prefect's own words (state names) are no false alarm.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tasks.audit import audit_dataset
from tasks.audit.run import local_prefect_database

PLANTED = "Quorvexa^Plimtandy"


@pytest.mark.slow
def test_a_value_in_the_prefect_database_is_found_and_prefect_words_are_not(prefect_server: str, tmp_path: Path):
    from prefect import flow

    @flow(name="audit-probe", persist_result=False)
    def probe(note: str) -> int:
        return len(note)

    originals = tmp_path / "originals"
    originals.mkdir()
    for name in ("running", "crashed", "pending", "cancelled", "paused", "scheduled", "finished"):
        shutil.copy(get_testdata_file("MR_small.dcm"), originals / f"{name}.dcm")
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    files, status = local_prefect_database()
    assert status == "scanned" and files, status
    clean = audit_dataset(dataset, originals, ocr=False, prefect_database=True)
    assert clean.ok and clean.prefect_database == "scanned", [(f.path, f.attributes) for f in clean.findings]

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = PLANTED
    ds.save_as(originals / "planted.dcm")
    probe("reviewed for Plimtandy")  # a parameter carrying a value: stored by the server in its database
    report = audit_dataset(dataset, originals, ocr=False, prefect_database=True)
    found = {(f.path, f.where, f.attributes) for f in report.findings}
    assert found and all(p.startswith("prefect:prefect") and w == "prefect database" for p, w, _ in found)
    assert {a for _, _, attrs in found for a in attrs} == {"PatientName (0010,0010)"}
    assert "plimtandy" not in report.to_json().casefold()
    assert report.prefect_files_scanned >= 1
    assert audit_dataset(dataset, originals, ocr=False).prefect_database == "off"
