"""End to end on real pydicom-data files across transfer syntaxes: no identifying value survives, outputs re-read
with pydicom and dcmtk, references stay consistent, bad inputs are quarantined, re-runs are idempotent."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tasks.deid.context import DeidContext
from tasks.deid.folder import INPUTS_FILE, deidentify_folder
from tasks.deid.options import DeidOption
from tests.tasks.deid.conftest import KEY_BYTES
from tests.tasks.deid.phi import all_bytes, identifying_values, surviving

pytestmark = pytest.mark.slow

# One file per syntax / object kind (distinct SOP Instance UIDs).
FILES = {
    "CT_small.dcm": "explicit VR little endian CT",
    "MR_small_implicit.dcm": "implicit VR little endian",
    "MR_small_bigendian.dcm": "explicit VR big endian",
    "emri_small_RLE.dcm": "RLE, 10 frames",
    "SC_rgb_dcmtk_+eb+cr.dcm": "JPEG baseline",
    "JPEG-LL.dcm": "JPEG lossless",
    "emri_small_jpeg_2k_lossless.dcm": "JPEG 2000, 10 frames",
    "MR_small_jpeg_ls_lossless.dcm": "JPEG-LS",
    "examples_ybr_color.dcm": "US cine, JPEG baseline, 30 frames",
    "OBXXXX1A_rle_2frame.dcm": "US RLE, 2 frames",
    "image_dfl.dcm": "deflated explicit VR",
    "reportsi.dcm": "structured report (no pixels)",
    "rtplan.dcm": "RT plan (no pixels)",
    "waveform_ecg.dcm": "ECG waveform",
}
PLANTED = {
    "PatientName": "ZYGMUNT^KOWALSKI",
    "PatientID": "MRN-77123456",
    "InstitutionName": "Hospital of Saint Elsewhere",
    "ReferringPhysicianName": "WESTPHALL^DONALD",
    "OtherPatientIDs": "OTHERID-991",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """De-identify the curated files (planted PHI in half of them, names full of PHI) with 2 workers."""
    source = tmp_path_factory.mktemp("source")
    out = tmp_path_factory.mktemp("out")
    inputs = {}
    for i, name in enumerate(FILES):
        target = source / f"KOWALSKI_ZYGMUNT_{i}" / name.replace(".dcm", "")  # no extension, PHI in the folder name
        target.parent.mkdir()
        ds = dcmread(get_testdata_file(name))
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.770.{i}"  # some pydicom-data files share a SOP Instance UID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if i % 2 == 0:
            for keyword, value in PLANTED.items():
                setattr(ds, keyword, value)
        ds.save_as(target)
        inputs[target] = dcmread(target)
    # a second CT that references the first (referential integrity)
    ref = dcmread(get_testdata_file("CT_small.dcm"))
    first_ct = inputs[source / "KOWALSKI_ZYGMUNT_0" / "CT_small"]
    ref.SOPInstanceUID = ref.file_meta.MediaStorageSOPInstanceUID = first_ct.SOPInstanceUID + ".99"
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = first_ct.SOPClassUID, first_ct.SOPInstanceUID
    ref.ReferencedImageSequence = Sequence([item])
    ref.save_as(source / "referencing.dcm")
    inputs[source / "referencing.dcm"] = dcmread(source / "referencing.dcm")
    # bad inputs: not DICOM, truncated
    (source / "notes_KOWALSKI.txt").write_text("Patient ZYGMUNT KOWALSKI, MRN-77123456\n")
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    (source / "truncated.dcm").write_bytes(data[: len(data) // 2])
    originals = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    from tasks.deid.keys import DeidKey

    ctx = DeidContext.create(DeidKey(KEY_BYTES), clean_pixels="off")
    summary = deidentify_folder(source, out, ctx, workers=2, progress=False)
    return source, out, ctx, inputs, originals, summary


def test_summary_and_logs(run):
    source, out, _, inputs, originals, summary = run
    assert summary.files == len(inputs) + 2
    assert summary.written == len(inputs) and summary.quarantined == 2
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == originals  # SOURCE untouched
    audit = [json.loads(line) for line in (out / INPUTS_FILE).read_text().splitlines()]
    assert len(audit) == len(inputs) + 2
    assert {r["status"] for r in audit} == {"written", "quarantined"}
    quarantine = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert sorted(r["reason"] for r in quarantine) == ["not-dicom", "truncated"]
    assert not list(out.rglob(".medflow-tmp-*"))


def test_no_identifying_value_survives(run):
    _, out, ctx, inputs, _, _ = run
    values: set[str] = set()
    kept: set[str] = set()
    for ds in inputs.values():
        found, retained = identifying_values(ds, ctx.rules)
        values |= found
        kept |= retained
    values = {v for v in values if not any(v in k for k in kept)}  # "TOSHIBA" is kept inside "TOSHIBA_MEC"
    values |= {"KOWALSKI", "ZYGMUNT", "MRN-77123456", "Saint Elsewhere", "WESTPHALL", "notes_KOWALSKI", "referencing"}
    assert len(values) > 50
    assert surviving(values, all_bytes(out)) == set()


def test_outputs_reread_by_pydicom_and_dcmtk(run):
    _, out, _, inputs, _, _ = run
    outputs = sorted(out.rglob("*.dcm"))
    assert len(outputs) == len(inputs)
    for path in outputs:
        ds = dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert path.stem == ds.SOPInstanceUID and path.parent.name == ds.SeriesInstanceUID
        if "PixelData" in ds and ds.Modality != "ECG":
            assert ds.pixel_array.size > 0
    dcmdump = shutil.which("dcmdump")
    assert dcmdump is not None, "dcmtk's dcmdump is not installed: run .ci/system-deps (CI does)"
    for path in outputs:
        proc = subprocess.run([dcmdump, "-q", "+E", str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, path.name
        assert "E:" not in proc.stderr, path.name


def test_references_and_frame_of_reference_stay_consistent(run):
    _, out, _, _, _, _ = run
    cts = [dcmread(p) for p in out.rglob("*.dcm")]
    cts = [d for d in cts if d.Modality == "CT" and d.get("StudyDescription", None) is None]
    by_uid = {d.SOPInstanceUID: d for d in cts}
    referencing = [d for d in cts if "ReferencedImageSequence" in d and d.SOPInstanceUID in by_uid]
    pairs = [(d, d.ReferencedImageSequence[0].ReferencedSOPInstanceUID) for d in referencing]
    assert any(ref in by_uid and ref != d.SOPInstanceUID for d, ref in pairs)
    for d, ref in pairs:
        if ref in by_uid:
            assert by_uid[ref].FrameOfReferenceUID == d.FrameOfReferenceUID
            assert by_uid[ref].StudyInstanceUID == d.StudyInstanceUID


def test_rerun_is_idempotent_and_key_never_leaks(run, caplog):
    source, out, ctx, inputs, _, _ = run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.dcm")}
    with caplog.at_level(logging.DEBUG):
        summary = deidentify_folder(source, out, ctx, workers=1, progress=False)
    assert summary.skipped == len(inputs) and summary.written == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.dcm")} == before
    data = all_bytes(out) + caplog.text.encode()
    assert KEY_BYTES not in data and KEY_BYTES.hex().encode() not in data
    assert b"KOWALSKI" not in caplog.text.encode()


def test_options_are_recorded(tmp_path):
    from tasks.deid.keys import DeidKey

    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), source / "a")
    opts = {DeidOption.CLEAN_DESCRIPTORS, DeidOption.RETAIN_DEVICE_IDENTITY}
    ctx = DeidContext.create(DeidKey(KEY_BYTES), options=opts, clean_pixels="off")
    deidentify_folder(source, tmp_path / "out", ctx, workers=1, progress=False)
    (path,) = (tmp_path / "out").rglob("*.dcm")
    codes = [i.CodeValue for i in dcmread(path).DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113105", "113109"]


def test_interrupted_run_leftovers_are_cleaned_and_missing_outputs_redone(tmp_path):
    from tasks.atomic import TEMP_PREFIX
    from tasks.deid.keys import DeidKey

    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), source / "a")
    shutil.copy(get_testdata_file("MR_small.dcm"), source / "b")
    out = tmp_path / "out"
    ctx = DeidContext.create(DeidKey(KEY_BYTES), clean_pixels="off")
    deidentify_folder(source, out, ctx, workers=1, progress=False)
    first, second = sorted(out.rglob("*.dcm"))
    stale = first.parent / f"{TEMP_PREFIX}partial"
    stale.write_bytes(b"half a file")  # what a killed run leaves behind
    second.unlink()
    summary = deidentify_folder(source, out, ctx, workers=1, progress=False)
    assert not stale.exists()
    assert summary.skipped == 1 and summary.written == 1 and second.exists()
    with pytest.raises(Exception, match="OUTPUT must not be SOURCE"):
        deidentify_folder(source, source, ctx, progress=False)
