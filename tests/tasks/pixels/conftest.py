"""Shared fixtures: real pydicom-data files by name, the labelled boxes, one detector per session."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tasks.pixels import PixelOptions
from tasks.pixels.detector import TextDetector

LABELS = Path(__file__).resolve().parents[2] / "data" / "pixels" / "real_labels.json"


def load(name: str) -> pydicom.Dataset:
    """A pydicom-data test file, read fully."""
    return pydicom.dcmread(get_testdata_file(name))


def labels(name: str, kind: str | None = None, phi: bool | None = None) -> list[tuple[int, int, int, int]]:
    """Hand-labelled text boxes of a real file (optionally only one kind, 'text' or 'marker', and only boxes
    that do or do not carry PHI)."""
    entry = json.loads(LABELS.read_text())["files"][name]
    return [
        tuple(lab["box"])
        for lab in entry["labels"]
        if (kind is None or lab["kind"] == kind) and (phi is None or lab["phi"] == phi)
    ]


@pytest.fixture(scope="session")
def options() -> PixelOptions:
    return PixelOptions(device="cpu")


@pytest.fixture(scope="session")
def detector(options: PixelOptions) -> TextDetector:
    """The real easyocr CRAFT detector, loaded once (get_detector caches it for clean_pixels too)."""
    return options.detector()
