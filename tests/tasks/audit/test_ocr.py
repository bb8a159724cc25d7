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
