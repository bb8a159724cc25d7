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


def test_an_expectation_that_raises_fails_its_rows_closed(tmp_path):
    """A manifest without a checked column (GX raises in the metric) and an unusable configured regex: every row
    of the group fails as ``<expectation>:error``, never passes silently; other expectations still mark rows."""
    manifest = pd.DataFrame([_row(), _row(instance_id="2.25.21", zarr_key="2.25.21/0", source_fps=3.0)])
    manifest = manifest.drop(columns=["blank_frame_share"])
    out, summary = run_qc(manifest, tmp_path, QcRules(patient_id_regex="([", max_failure_share=1.0), "r1")
    missing = "expect_column_values_to_be_between:blank_frame_share:error"
    bad_regex = "expect_column_values_to_match_regex:patient_id:error"
    assert sorted(summary.errors) == sorted([missing, bad_regex])
    assert list(out.qc_status) == ["fail", "fail"]
    for failures in out.qc_failures:
        assert missing in failures and bad_regex in failures
    assert "expect_column_values_to_be_between:source_fps" in out.qc_failures[1]
    assert "expect_column_values_to_be_between:source_fps" not in out.qc_failures[0]
    assert summary.suites["video"]["success"] is False and summary.by_expectation[missing] == 2


def test_an_exception_recorded_for_the_whole_expectation_or_a_missing_result_fails_closed():
    """The other form Great Expectations records an exception in (for the whole expectation, built by its own
    validator when evaluating results raises), and an expectation that is missing from the results."""
    import great_expectations.expectations as gxe
    from great_expectations.validator.validator import Validator

    from tasks.qc.validate import failing_positions

    config = gxe.ExpectColumnValuesToNotBeNull(column="a").configuration
    results = Validator._catch_exceptions_in_failing_expectation_validations("traceback", RuntimeError(), [config], [])
    assert results[0].exception_info["raised_exception"] is True  # the form the old code skipped: no row failed
    expected = ["expect_column_values_to_not_be_null:a", "expect_column_values_to_not_be_null:b"]
    failing, errors = failing_positions(results, expected, 3)
    assert errors == ["expect_column_values_to_not_be_null:a:error", "expect_column_values_to_not_be_null:b:error"]
    assert failing == {name: [0, 1, 2] for name in errors}
