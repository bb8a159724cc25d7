"""Great Expectations suites over a manifest: a bad row is marked fail with the expectation named."""

from __future__ import annotations

import json

import pandas as pd

from tasks.qc.rules import QcRules
from tasks.qc.suites import suite_group
from tasks.qc.validate import DOCS_INDEX, run_qc


def _row(**overrides):
    row = {
        "instance_id": "2.25.11",
        "patient_id": "ABCDEFGHIJKLMNOP",
        "study_id": "2.25.12",
        "series_id": "2.25.13",
        "modality": "US",
        "kind": "video",
        "zarr_key": "2.25.11/0",
        "view_key": "2.25.11/view",
        "frames": 60,
        "view_frames": 100,
        "source_fps": 30.0,
        "spacing_y": 0.3,
        "spacing_x": 0.3,
        "spacing_z": None,
        "pixel_std": 12.0,
        "blank_frame_share": 0.0,
        "study_date": "2011-03-04",
        "patient_identity_removed": "YES",
    }
    row.update(overrides)
    return row


def test_failing_rows_are_marked_and_docs_written(tmp_path):
    manifest = pd.DataFrame(
        [
            _row(),
            _row(instance_id="2.25.21", zarr_key="2.25.21/0", source_fps=3.0),  # fps out of range
            _row(instance_id="1.2.840.99", zarr_key="x/0", pixel_std=0.0),  # not a pseudonym, constant
            _row(
                instance_id="2.25.31", zarr_key="2.25.31/0", kind="volume", modality="CT", spacing_z=-1.0
            ),  # bad spacing
            _row(instance_id="2.25.41", zarr_key="2.25.41/0", patient_identity_removed="NO", study_date="1850-01-01"),
        ]
    )
    out, summary = run_qc(manifest, tmp_path, QcRules(max_failure_share=0.5), "r1")
    assert list(out.qc_status) == ["pass", "fail", "fail", "fail", "fail"]
    assert "expect_column_values_to_be_between:source_fps" in out.qc_failures[1]
    assert "expect_column_values_to_match_regex:instance_id" in out.qc_failures[2]
    assert "expect_column_values_to_be_between:pixel_std" in out.qc_failures[2]
    assert out.qc_failures[3] == "expect_column_values_to_be_between:spacing_z"
    assert "expect_column_values_to_be_in_set:patient_identity_removed" in out.qc_failures[4]
    assert "expect_column_values_to_be_between:study_datetime" in out.qc_failures[4]
    assert summary.failed_rows == 4 and summary.exceeded  # 80 % > 50 %
    assert (tmp_path / "qc" / DOCS_INDEX).is_file()
    saved = json.loads((tmp_path / "qc" / "results-r1.json").read_text())
    assert saved["failed_rows"] == 4 and set(saved["suites"]) == {"video", "CT"}
    # a second run on the same qc folder reuses the GX project
    again, _ = run_qc(manifest.iloc[:1], tmp_path, QcRules(), "r2")
    assert list(again.qc_status) == ["pass"]


def test_suite_groups():
    assert suite_group("US", "video") == "video"
    assert suite_group("MR", "volume") == "MR"
    assert suite_group("NM", "image") == "image"
