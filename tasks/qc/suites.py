"""Great Expectations 1.x suites over the manifest, one per modality group (video, CT, MR, other)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from tasks.qc.rules import QcRules

if TYPE_CHECKING:
    import great_expectations as gx

SUITE_GROUPS = ("video", "CT", "MR", "image")


def suite_group(modality: str, kind: str) -> str:
    """Which suite checks a row: cines by kind, volumes by modality, everything else as image."""
    if kind == "video":
        return "video"
    if kind == "volume" and modality in ("CT", "MR"):
        return modality
    return "image"


def _date(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def build_suite(group: str, rules: QcRules) -> gx.ExpectationSuite:
    """The expectations for ``group``: common checks plus fps/frame count (video) or spacing (volumes)."""
    import great_expectations as gx  # heavy (~10 s cold): imported only where QC runs, never in batch workers
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"medflow-{group}")
    for column in rules.required:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="modality", value_set=sorted(rules.modalities)))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="patient_identity_removed", value_set=["YES"]))
    for column in ("instance_id", "study_id", "series_id"):
        suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column=column, regex=rules.uid_regex))
    suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column="patient_id", regex=rules.patient_id_regex))
    # no constant or blank arrays: some spread of values, and not mostly blank frames
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="pixel_std", min_value=0, strict_min=True))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="blank_frame_share", max_value=0.5))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(
            column="study_datetime", min_value=_date(rules.earliest_date), max_value=_date(rules.latest_date)
        )
    )
    for column in ("spacing_y", "spacing_x"):
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True))
    if group == "video":
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="source_fps"))
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(column="source_fps", min_value=rules.fps_min, max_value=rules.fps_max)
        )
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="frames", min_value=rules.min_frames))
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="view_key"))
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="view_frames", min_value=rules.min_frames))
    if group in ("CT", "MR"):
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="spacing_z"))
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="spacing_z", min_value=0, strict_min=True))
    return suite
