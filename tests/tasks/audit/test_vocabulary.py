"""The project's own vocabulary is never a finding; a value spelled like it still is, where header data goes.

Both sides: an ingest run over originals named ``truncated.dcm``, ``nested.dcm``... is clean (the issue's false
alarms), and a patient named "Nested^Quarantined" is found in DICOM copies, Zarr attributes, manifest cells and
stray files, but not in JSON keys or the run's logs (only code writes words there). Short name parts (Li, Ng)
are whole words in text, never in binary content.
"""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pydicom
import pytest
import zarr
from pydicom.data import get_testdata_file

from tasks.audit import audit_dataset, collect_patterns
from tasks.audit.vocabulary import LIBRARIES, LIBRARY_WORDS, is_vocabulary, project_vocabulary
from tasks.deid.context import DeidContext
from tasks.deid.keys import DeidKey
from tasks.errors import QuarantineReason
from tasks.ingest.folder import ingest_folder
from tasks.ingest.ledger import Status
from tasks.synth.people import FAMILY

VOCABULARY_NAMES = ["truncated", "nested", "quarantined", "expectation", "unsupported", "volume"]


def test_vocabulary_comes_from_the_code_and_leaves_out_synthetic_names() -> None:
    words = project_vocabulary()
    for code in [*QuarantineReason, *Status]:
        assert is_vocabulary(str(code), words), code
    for column in ("zarr_key", "blank_frame_share", "qc_status", "patient_identity_removed"):  # manifest columns
        assert is_vocabulary(column, words), column
    assert {"patientname", "sopinstanceuid", "little", "bitshuffle" if "bitshuffle" in words else "zstd"} <= words
    only_synthetic = {"johnson", "walker", "nguyen", "kowalski", "okafor"}
    assert not only_synthetic & words  # names of the demo cohort and the OCR set are no vocabulary
    assert {name.casefold() for name in FAMILY} - words  # most made-up names stay searchable


def test_library_words_are_generated_for_the_installed_versions() -> None:
    doc = json.loads(LIBRARY_WORDS.read_text())
    for name in LIBRARIES:
        assert doc[name]["version"] == version(name), f"run `python -m tasks.audit.vocabulary` ({name} changed)"
        assert len(doc[name]["words"]) > 1000
    assert not {"thomas", "davis", "nelson"} & set(doc["prefect"]["words"])  # its time-zone table is data


def _originals(folder: Path) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(get_testdata_file("MR_truncated.dcm"), folder / "truncated.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), folder / "nested.dcm")
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "quarantined.dcm")
    shutil.copy(get_testdata_file("examples_ybr_color.dcm"), folder / "expectation.dcm")
    shutil.copy(get_testdata_file("emri_small.dcm"), folder / "volume.dcm")
    (folder / "unsupported.txt").write_text("not dicom")
    (folder / "carousel.dcm").write_bytes(b"\x00" * 200)  # no medflow word, but Great Expectations writes it
    return folder


def test_file_names_made_of_vocabulary_are_no_patterns_and_a_clean_run_has_no_findings(tmp_path: Path) -> None:
    """The issue's case: files named after the project's own words made a clean ingest fail its audit."""
    source, dataset = _originals(tmp_path / "source"), tmp_path / "dataset"
    labels = collect_patterns(source).labels
    assert not set(VOCABULARY_NAMES) & set(labels) and "carousel" in labels
    ctx = DeidContext.create(DeidKey(b"k" * 32), clean_pixels="off")
    summary = ingest_folder(source, dataset, ctx, workers=1)
    assert summary.quarantine_reasons == {"truncated": 1, "not-dicom": 2} and summary.stored == 4
    assert (dataset / "qc" / "gx" / "great_expectations.yml").is_file()
    report = audit_dataset(dataset, source, ocr=False)
    assert report.ok, [(f.path, f.where, f.attributes) for f in report.findings]


@pytest.fixture
def named_like_vocabulary(tmp_path: Path) -> Path:
    """Originals of a patient named "Nested^Quarantined" (both words are medflow's vocabulary) treated by
    "Oblestine^Zyqvarn" (no vocabulary) and "Ng^Li" (short name parts)."""
    folder = tmp_path / "originals"
    folder.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "Nested^Quarantined"
    ds.ReferringPhysicianName = "Oblestine^Zyqvarn"
    ds.OperatorsName = "Ng^Li"
    ds.save_as(folder / "a.dcm")
    return folder


def _dataset(root: Path) -> Path:
    dataset = root / "dataset"
    (dataset / "ingest-runs").mkdir(parents=True)
    (dataset / "quarantine.jsonl").write_text(
        json.dumps({"source_id": "ab", "reason": "truncated", "detail": "nested sequence quarantined"}) + "\n"
    )
    (dataset / "ingest-runs" / "r.json").write_text(json.dumps({"nested": 1, "quarantined": 2}))
    (dataset / "attrs.json").write_text(json.dumps({"nested": {"quarantined": True}}))  # keys only
    return dataset


def _where(report) -> set[tuple[str, str]]:
    return {(f.path, f.attributes[0]) for f in report.findings}


def test_a_patient_named_like_vocabulary_is_found_where_header_data_goes(
    named_like_vocabulary: Path, tmp_path: Path
) -> None:
    dataset = _dataset(tmp_path)
    clean = audit_dataset(dataset, named_like_vocabulary, ocr=False)
    assert clean.ok, _where(clean)  # logs and JSON keys: only code writes words there

    name = "PatientName (0010,0010)"
    copy = pydicom.dcmread(named_like_vocabulary / "a.dcm")
    copy.PatientName = "ANON^QUARANTINED"  # a DICOM copy that kept a name part
    copy.PatientIdentityRemoved = "YES"
    copy.save_as(dataset / "copy.dcm")
    store = zarr.open_group(str(dataset / "store.zarr"), mode="w")
    store.attrs["operator"] = "Nested"
    pd.DataFrame({"instance_id": ["2.25.1"], "note": ["nested"]}).to_parquet(dataset / "manifest.parquet")
    (dataset / "notes.txt").write_text("patient nested, seen today")
    report = audit_dataset(dataset, named_like_vocabulary, ocr=False)
    found = _where(report)
    assert {("copy.dcm", name), ("store.zarr/zarr.json", name), ("manifest.parquet", name)} <= found
    assert ("notes.txt", name) in found
    assert not {p for p, _ in found} & {"quarantine.jsonl", "ingest-runs/r.json", "attrs.json"}


def test_a_value_in_a_run_log_is_still_found_when_it_is_no_vocabulary(
    named_like_vocabulary: Path, tmp_path: Path
) -> None:
    dataset = _dataset(tmp_path)
    with (dataset / "quarantine.jsonl").open("a") as fh:
        fh.write(json.dumps({"source_id": "cd", "reason": "deid-failed", "detail": "value Oblestine refused"}) + "\n")
    (dataset / "ingest-runs" / "r.json").write_text(json.dumps({"zyqvarn": 1}))  # a key made of a value
    report = audit_dataset(dataset, named_like_vocabulary, ocr=False)
    assert _where(report) == {
        ("quarantine.jsonl", "ReferringPhysicianName (0008,0090)"),
        ("ingest-runs/r.json", "ReferringPhysicianName (0008,0090)"),
    }
    assert "oblestine" not in report.to_json().casefold()


def test_short_name_parts_are_whole_words_in_text_and_never_in_binary(
    named_like_vocabulary: Path, tmp_path: Path
) -> None:
    patterns = collect_patterns(named_like_vocabulary)
    assert set(patterns.short) == {"ng", "li"} and not {"ng", "li"} & set(patterns.labels)
    dataset = _dataset(tmp_path)
    (dataset / "lipids.txt").write_text("lipid panel, ngram, x7li2, pseudonym 5NGQ")
    (dataset / "page.html").write_text("<ul><li>item</li></ul>")
    (dataset / "weights.bin").write_bytes(b"\x00\x01\x02 Li \x03\x04\x00")
    assert audit_dataset(dataset, named_like_vocabulary, ocr=False).ok

    (dataset / "notes.txt").write_text("read by Li (operator)")
    (dataset / "page.html").write_text("<ul><li>reviewed: NG</li></ul>")
    pd.DataFrame({"operator": ["Li"]}).to_parquet(dataset / "table.parquet")
    report = audit_dataset(dataset, named_like_vocabulary, ocr=False)
    assert {f.path for f in report.findings} == {"notes.txt", "page.html", "table.parquet"}
    assert {a for f in report.findings for a in f.attributes} == {"OperatorsName (0008,1070)"}
