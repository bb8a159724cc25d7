"""The demo's de-identification step on the curated pydicom-data sample (pixel cleaning off: that is issue 3's)."""

from __future__ import annotations

import json

import pytest
from pydicom import dcmread

from flows.commands.demo import DEMO_FILES, print_summary, run_demo_deid


@pytest.mark.slow
def test_demo_deid(tmp_path, capsys):
    summary = run_demo_deid(tmp_path / "demo", clean_pixels="off", workers=1, progress=False, key_file=tmp_path / "k")
    assert summary.files == len(DEMO_FILES)
    assert summary.written == len(DEMO_FILES) - 2 and summary.reasons == {"truncated": 1, "not-dicom": 1}
    outputs = list((tmp_path / "demo" / "deid").rglob("*.dcm"))
    assert {dcmread(p).get("Modality") for p in outputs} >= {"US", "CT", "MR", "SR", "RTPLAN", "ECG", "SEG"}
    audit = (tmp_path / "demo" / "deid" / "deid-inputs.jsonl").read_text().splitlines()
    assert len(audit) == len(DEMO_FILES) and all("source_id" in json.loads(line) for line in audit)
    print_summary(summary, tmp_path / "demo")
    assert "quarantined" in capsys.readouterr().out
