"""OCR of stored frames finds burned-in identifying text that escaped masking (real easyocr, offline weights)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import zarr

from tasks.audit import PatternSet, audit_dataset


@pytest.mark.slow
def test_ocr_finds_text_left_in_frames(tmp_path: Path) -> None:
    frames = np.zeros((3, 240, 320), np.uint8)
    for frame in frames:
        cv2.circle(frame, (160, 150), 50, 120, -1)
    cv2.putText(frames[0], "ZYQVARN OBLESTINE", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    frames[1:] = frames[0]
    store = zarr.open_group(str(tmp_path / "store.zarr"), mode="w")
    store.create_array("leaky", shape=frames.shape, dtype="uint8", chunks=(1, 240, 320))[:] = frames
    store.create_array("clean", shape=frames.shape, dtype="uint8", chunks=(1, 240, 320))[:] = frames * (frames < 200)
    patterns = PatternSet()
    patterns.add("zyqvarn^oblestine", "PatientName (0010,0010)")
    patterns.add("oblestine", "PatientName (0010,0010)")

    report = audit_dataset(tmp_path, patterns=patterns, ocr=True, ocr_frames=1)

    assert report.arrays_ocr == 2
    assert [(f.path, f.kind) for f in report.findings] == [("store.zarr/leaky", "ocr")]
    assert report.findings[0].attributes == ("PatientName (0010,0010)",)


@pytest.mark.slow
def test_the_in_flow_audit_reads_every_array_the_run_stored_not_the_first_fifty(tmp_path: Path) -> None:
    """The audit task of an ingest run OCRs each array of each node that run stored (here 2 nodes x 2 arrays,
    behind 51 older nodes whose arrays an array cap would have read first), and finds text left in one."""
    import json

    from tasks.audit.task import audit_task, run_nodes

    dataset = tmp_path / "dataset"
    blank = np.zeros((1, 64, 64), np.uint8)
    store = zarr.open_group(str(dataset / "store.zarr"), mode="w")
    for i in range(51):
        store.create_group(f"2.25.{i:03d}").create_array("0", shape=blank.shape, dtype="uint8")[:] = blank
    leaky = np.zeros((2, 120, 320), np.uint8)
    cv2.putText(leaky[0], "ZYQVARN", (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 255, 3)
    leaky[1] = leaky[0]
    rows = []
    for key, frames in (("2.25.900", leaky), ("2.25.901", np.zeros((2, 120, 320), np.uint8))):
        node = store.create_group(key)
        node.create_array("0", shape=frames.shape, dtype="uint8")[:] = frames
        node.create_array("view", shape=(2, 112, 112), dtype="uint8")[:] = 0
        rows.append({"run_id": "new", "status": "stored", "zarr_key": f"{key}/0", "source_id": key})
    rows.append({"run_id": "old", "status": "stored", "zarr_key": "2.25.000/0", "source_id": "x"})
    rows.append({"run_id": "new", "status": "quarantined", "zarr_key": None, "source_id": "y"})
    (dataset / "inputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_nodes(dataset, "new") == {"2.25.900", "2.25.901"}

    originals = tmp_path / "originals"
    originals.mkdir()
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "Zyqvarn^Oblestine"
    ds.save_as(originals / "a.dcm")
    report_path = tmp_path / "audit.json"
    result = audit_task.fn(
        str(dataset), str(originals), str(report_path), ocr=True, run_id="new", prefect_database=False
    )
    assert result["arrays_ocr"] == 4 and result["findings"] == 1
    findings = json.loads(report_path.read_text())["findings"]
    assert [(f["path"], f["kind"], f["attributes"]) for f in findings] == [
        ("store.zarr/2.25.900/0", "ocr", ["PatientName (0010,0010)"])
    ]
