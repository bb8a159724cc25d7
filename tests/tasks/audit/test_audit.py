"""audit_dataset and ``medflow audit`` on small real datasets with planted leaks."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import typer
import zarr
from typer.testing import CliRunner

from flows import cli
from flows.commands import audit
from tasks.audit import audit_dataset, collect_patterns
from tests.tasks.audit.conftest import PLANTED


def _no_value_in(text: str) -> None:
    low = text.casefold()
    for value in PLANTED.values():
        assert value.casefold() not in low
        assert value.split("^")[0].casefold() not in low


def test_collect_finds_plain_nested_and_private_values(originals: Path) -> None:
    patterns = collect_patterns(originals)
    labels = patterns.labels
    assert "zyqvarn^oblestine" in labels and "zyqvarn oblestine" in labels and "oblestine" in labels
    assert labels["mrn8827361"] == {"PatientID (0010,0020)"}
    assert "1961-04-07" in labels
    assert labels["quillmore vantage infirmary"] == {"InstitutionName (0008,0080)"}
    assert labels[PLANTED["nested_uid"]] == {"ReferencedSOPInstanceUID (0008,1155)"}
    assert "xertavian private note" in labels
    assert patterns.originals_read == 2


def test_clean_dataset_has_no_findings(originals: Path, clean_dataset: Path) -> None:
    report = audit_dataset(clean_dataset, originals, ocr=False)
    assert report.ok, report.to_json()
    assert report.files_scanned == 3


def test_leaks_found_everywhere_and_reported_without_values(originals: Path, clean_dataset: Path) -> None:
    ds = pydicom.dcmread(clean_dataset / "x.dcm")
    item = pydicom.Dataset()
    item.PatientName = PLANTED["name"]  # nested, under another attribute
    ds.ReferencedPatientSequence = pydicom.Sequence([item])
    ds.save_as(clean_dataset / "x.dcm")
    (clean_dataset / "runs" / "run.log").write_bytes("patient OBLESTINE seen".encode("utf-16-le"))
    pd.DataFrame({"instance_id": ["a"], "study_date": ["1961-04-07"]}).to_parquet(clean_dataset / "manifest.parquet")
    store = zarr.open_group(str(clean_dataset / "store.zarr"), mode="w")
    arr = store.create_array("inst", shape=(2, 8, 8), dtype="uint8")
    arr[:] = np.ones((2, 8, 8), np.uint8)
    arr.attrs["institution"] = "QUILLMORE VANTAGE INFIRMARY"
    (clean_dataset / "qc").mkdir()
    (clean_dataset / "qc" / "index.html").write_text(f"<td>{PLANTED['pid']}</td>")
    (clean_dataset / "bin.dat").write_bytes(
        # random bytes around the UID, fenced by NULs: a random digit beside it would (rightly) make it part
        # of a longer number rather than the UID, which made this test fail about one run in eleven
        b"\x00\x01" + os.urandom(64) + b"\x00" + PLANTED["nested_uid"].encode() + b"\x00" + os.urandom(64)
    )

    report = audit_dataset(clean_dataset, originals, ocr=False)
    where = {(f.path, f.where) for f in report.findings}
    attrs = {a for f in report.findings for a in f.attributes}
    assert ("x.dcm", "dicom element (0010,0010)") in where
    assert any(f.path == "runs/run.log" and "utf-16-le" in f.encoding for f in report.findings)
    assert ("manifest.parquet", "parquet column study_date") in where
    assert any(f.path.startswith("store.zarr") and f.where == "zarr-meta" for f in report.findings)
    assert ("qc/index.html", "text") in where
    assert ("bin.dat", "binary") in where
    assert {"PatientName (0010,0010)", "PatientBirthDate (0010,0030)", "InstitutionName (0008,0080)"} <= attrs
    assert not report.ok
    _no_value_in(report.to_json())
    assert report.files_skipped.get("zarr-chunk (pixels: OCR)", 0) >= 1


def test_structural_checks_without_originals(tmp_path: Path, clean_dataset: Path) -> None:
    ds = pydicom.dcmread(clean_dataset / "x.dcm")
    ds.SeriesInstanceUID = "1.2.3.4.5.6.7.8"  # not pseudonymised
    del ds.PatientIdentityRemoved
    ds.save_as(clean_dataset / "x.dcm")
    os.symlink(clean_dataset / "x.dcm", clean_dataset / "link.dcm")
    report = audit_dataset(clean_dataset, None, ocr=False)
    problems = {a for f in report.findings if f.kind == "structure" for a in f.attributes}
    assert "SeriesInstanceUID not pseudonymised" in problems
    assert "PatientIdentityRemoved is not YES" in problems
    assert "symlink inside the dataset" in problems


def _app() -> typer.Typer:
    """The audit command in a group of its own (``flows.cli.app`` collapses to it while it is the only one)."""
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("audit")(audit.command)
    return app


def test_registered_in_cli() -> None:
    assert any(c.name == "audit" and c.callback is audit.command for c in cli.app.registered_commands)


def test_cli_exit_codes_and_json(originals: Path, clean_dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    app = _app()
    args = ["audit", str(clean_dataset), "--originals", str(originals), "--no-ocr", "--no-prefect-db", "--json"]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["ok"] is True

    shutil.copy(originals / "ct.dcm", clean_dataset / "leaked.dcm")
    report_file = tmp_path / "report.json"
    bad = runner.invoke(app, [*args, "--report", str(report_file)])
    assert bad.exit_code == 1
    doc = json.loads(report_file.read_text())
    assert doc["ok"] is False and any(f["path"] == "leaked.dcm" for f in doc["findings"])
    _no_value_in(bad.output)
    _no_value_in(report_file.read_text())

    missing = runner.invoke(app, ["audit", str(tmp_path / "nope")])
    assert missing.exit_code == 2


def test_pixel_data_is_left_to_ocr(originals: Path, clean_dataset: Path) -> None:
    """Bytes inside Pixel Data are not text: a value spelled there is OCR's business, not the byte scan's."""
    ds = pydicom.dcmread(clean_dataset / "x.dcm")
    pixels = bytearray(ds.PixelData)
    pixels[100 : 100 + len(PLANTED["pid"])] = PLANTED["pid"].encode()
    ds.PixelData = bytes(pixels)
    ds.save_as(clean_dataset / "x.dcm")
    assert audit_dataset(clean_dataset, originals, ocr=False).ok

    (clean_dataset / "broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 7 + PLANTED["pid"].encode())
    report = audit_dataset(clean_dataset, originals, ocr=False)
    assert {f.path for f in report.findings if f.kind == "value"} == {"broken.dcm"}


def test_prefect_task_returns_counts_only(originals: Path, clean_dataset: Path, tmp_path: Path) -> None:
    from tasks.audit.task import audit_task

    shutil.copy(originals / "ct.dcm", clean_dataset / "leaked.dcm")
    result = audit_task.fn(
        str(clean_dataset), str(originals), str(tmp_path / "audit.json"), ocr=False, prefect_database=False
    )
    assert result["ok"] is False and result["findings"] > 0
    assert json.loads((tmp_path / "audit.json").read_text())["ok"] is False
    _no_value_in(json.dumps(result))


def test_identifying_file_names_are_found_and_never_printed(originals: Path, clean_dataset: Path) -> None:
    folder = clean_dataset / f"runs/{PLANTED['pid']}"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("nothing here")
    report = audit_dataset(clean_dataset, originals, ocr=False)
    assert [(f.where, f.attributes) for f in report.findings] == [("file or folder name", ("PatientID (0010,0020)",))]
    assert report.findings[0].path.startswith("path-sha256:")
    _no_value_in(report.to_json())


def test_fifo_and_dangling_link_among_originals_are_counted_not_opened(originals: Path, clean_dataset: Path) -> None:
    """Opening a FIFO blocks forever: the audit must skip it (and count it) instead of hanging."""
    fifo = originals / "pipe.dcm"
    os.mkfifo(fifo)
    os.symlink(originals / "gone.dcm", originals / "dangling.dcm")
    os.symlink(originals / "ct.dcm", originals / "link.dcm")  # a link to a regular file is read
    result: list = []
    worker = threading.Thread(target=lambda: result.append(audit_dataset(clean_dataset, originals, ocr=False)))
    worker.daemon = True
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():  # unblock the reader so the test process can exit, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the audit opened a FIFO among the originals and blocked")
    report = result[0]
    assert report.ok, report.to_json()
    assert report.originals_read == 3 and report.originals_unreadable == 2


def test_data_docs_theme_and_css_are_not_findings_but_rendered_values_are(originals: Path, clean_dataset: Path) -> None:
    """A name part that is also a CSS word (``White``) hits neither the vendored theme nor page styling. Great
    Expectations renders nothing but the manifest, so in its pages such a word counts once the manifest holds it
    (and is reported there too); a name that is no GX word counts in its pages anyway."""
    ds = pydicom.dcmread(originals / "ct.dcm")
    ds.OperatorsName = "White^Oblestine"
    ds.save_as(originals / "ct.dcm")
    site = clean_dataset / "qc" / "gx" / "uncommitted" / "data_docs" / "local_site"
    (site / "static" / "styles").mkdir(parents=True)
    (site / "static" / "styles" / "theme.css").write_text("body { background: white; }")
    (site / "static" / "images").mkdir()
    (site / "static" / "images" / "logo.svg").write_text('<svg><mask fill="white"/></svg>')
    page = site / "validations" / "page.html"
    page.parent.mkdir(parents=True)
    style = '<style>\n footer { border: 2px solid white; }\n</style><a style="white-space: normal">x</a>'
    page.write_text(f"<html><head>{style}</head><body><td>ok</td></body></html>")
    report = audit_dataset(clean_dataset, originals, ocr=False)
    assert report.ok, report.to_json()
    assert report.files_skipped.get("Data Docs theme asset (vendored, no data)") == 2

    page.write_text(f"<html><head>{style}</head><body><td>WHITE</td></body></html>")
    (site / "static" / "data.json").write_text('{"operator": "White"}')  # not a theme asset: scanned
    (site / "index.html").write_text("<script>var spec = {values: ['white']};</script>")
    assert audit_dataset(clean_dataset, originals, ocr=False).ok  # GX's own word, in no manifest cell

    prefix = "qc/gx/uncommitted/data_docs/local_site/"
    (site / "static" / "other.json").write_text('{"operator": "Oblestine"}')
    report = audit_dataset(clean_dataset, originals, ocr=False)
    assert {f.path for f in report.findings} == {prefix + "static/other.json"}  # no GX word: found in GX files

    (site / "static" / "other.json").unlink()
    pd.DataFrame({"instance_id": ["a"], "operator": ["White"]}).to_parquet(clean_dataset / "manifest.parquet")
    report = audit_dataset(clean_dataset, originals, ocr=False)
    found = {f.path for f in report.findings if "OperatorsName (0008,1070)" in f.attributes}
    pages = {prefix + "validations/page.html", prefix + "static/data.json", prefix + "index.html"}
    assert found == pages | {"manifest.parquet"}


def test_values_the_profile_keeps_are_not_patterns(originals: Path) -> None:
    """An InstitutionName that equals the kept Manufacturer (real files do this) is not searched for;
    a planted institution still is."""
    mr = pydicom.dcmread(originals / "mr.dcm")
    mr.InstitutionName = mr.Manufacturer
    mr.save_as(originals / "mr.dcm")
    labels = collect_patterns(originals).labels
    assert mr.Manufacturer.casefold() not in labels
    assert "quillmore vantage infirmary" in labels


def test_checkpoint_names_do_not_match_name_field_labels_but_the_name_still_does(tmp_path: Path) -> None:
    """pydicom-data's rtplan.dcm is patient "Last^First^mid^pre": Lightning's ``last.ckpt`` in a run folder of the
    dataset is no leak (a second ``make demo`` failed on it), the full name in a file still is."""
    from pydicom.data import get_testdata_file

    originals = tmp_path / "originals"
    originals.mkdir()
    shutil.copy(get_testdata_file("rtplan.dcm"), originals / "plan.dcm")
    dataset = tmp_path / "dataset"
    (dataset / "runs" / "r1" / "checkpoints").mkdir(parents=True)
    (dataset / "runs" / "r1" / "checkpoints" / "last.ckpt").write_bytes(b"\x00\x01 first weights")
    assert audit_dataset(dataset, originals, ocr=False).ok
    (dataset / "runs" / "r1" / "notes.txt").write_text("patient Last^First^mid^pre")
    report = audit_dataset(dataset, originals, ocr=False)
    assert not report.ok and {f.path for f in report.findings} == {"runs/r1/notes.txt"}
