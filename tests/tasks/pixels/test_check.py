"""``--clean-pixels auto`` beyond ultrasound: CT, MR, CR and an RGB capture labelled CT with a burned-in name
are masked in ``medflow deid`` output and in the ingested Zarr arrays; a clean CT slice is left bit-exact.

Truth is the ink painted into the inputs (``tests/tasks/pixels/burned.py``), checked against the pixels read
back from what was written, never against what the cleaner reports."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
import zarr

from tasks.deid.context import DeidContext
from tasks.deid.folder import deidentify_folder
from tasks.deid.keys import DeidKey
from tasks.ingest.folder import ingest_folder
from tasks.pixels import PixelAction, pixel_action
from tasks.pixels.candidates import components, text_candidates
from tasks.pixels.imaging import gray8
from tests.tasks.pixels.burned import write_inputs

GLYPHS_CHANGED = 0.99
"""Share of the ink pixels of the name that must differ in the written output."""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_inputs(tmp_path_factory.mktemp("burned"))


@pytest.fixture(scope="module")
def ctx():
    return DeidContext.create(DeidKey(b"p" * 32), clean_pixels="auto")


def _label(ds: pydicom.Dataset) -> str:
    if int(ds.get("SamplesPerPixel") or 1) == 3:
        return "sc_ct"
    return {("CT", 512): "ct", ("CT", 128): "clean_ct", ("MR", 484): "mr", ("CR", 384): "cr"}[
        (str(ds.Modality), int(ds.Rows))
    ]


def test_auto_policy_routes_modalities(inputs):
    actions = {k: pixel_action(pydicom.dcmread(v.path), "auto") for k, v in inputs.items()}
    assert actions == {
        "ct": PixelAction.CHECK,
        "mr": PixelAction.CHECK,
        "cr": PixelAction.CLEAN,
        "sc_ct": PixelAction.CLEAN,  # an SC SOP class is cleaned whatever its Modality says
        "clean_ct": PixelAction.CHECK,
    }


def test_structural_candidates_find_the_burned_name_on_real_slices(inputs):
    for label in ("ct", "mr"):
        ds = pydicom.dcmread(inputs[label].path)
        gray = gray8(inputs[label].pixels, str(ds.PhotometricInterpretation), ds)[0]
        ys, xs = np.nonzero(inputs[label].ink)
        cands = text_candidates(gray)
        assert any(b[0] <= xs.min() + 2 and b[2] >= xs.max() - 2 and b[1] <= ys.min() + 2 for b in cands), label


def test_sparse_components_match_opencv_stats():
    rng = np.random.default_rng(19)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        binary = (rng.random((h, w)) < (0 if trial % 10 == 0 else rng.random() * 0.5)).astype(np.uint8)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        got_labels, got_stats = components(binary)
        assert np.array_equal(got_labels, labels) and np.array_equal(got_stats, stats[1:]), trial


@pytest.mark.slow
def test_deid_masks_burned_names_and_keeps_clean_ct_bit_exact(inputs, ctx, tmp_path):
    summary = deidentify_folder(inputs["ct"].path.parent, tmp_path, ctx, workers=0, progress=False)
    assert summary.written == len(inputs) and summary.quarantined == 0
    written = {}
    for path in tmp_path.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        written[_label(ds)] = ds
    assert set(written) == set(inputs)
    for label, item in inputs.items():
        after = written[label].pixel_array
        after = after[None] if after.ndim == item.pixels.ndim - 1 else after
        if item.ink is None:
            assert np.array_equal(after, item.pixels), label  # untouched: bit-exact
            assert "BurnedInAnnotation" not in written[label]
            continue
        changed = (after != item.pixels).reshape((*after.shape[:3], -1)).any(axis=-1)
        assert changed[:, item.ink].mean() >= GLYPHS_CHANGED, label
        ys, xs = np.nonzero(item.ink)
        line = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1) / item.ink.size
        assert changed.mean() <= 3 * line + 0.01, label  # the name (and maybe other text), not the image
        assert written[label].BurnedInAnnotation == "NO"


@pytest.mark.slow
def test_ingest_stores_burned_names_masked_in_zarr(inputs, ctx, tmp_path):
    dataset = tmp_path / "ds"
    summary = ingest_folder(inputs["ct"].path.parent, dataset, ctx, workers=0, run_id="check")
    assert summary.quarantined == 0 and summary.stored == len(inputs)  # the RGB capture labelled CT included
    manifest = pd.read_parquet(dataset / "manifest.parquet")
    root = zarr.open_group(dataset / "store.zarr", mode="r")
    seen = set()
    for row in manifest.itertuples():
        stored = np.asarray(root[row.zarr_key])
        label = _label_of_array(row.modality, stored)
        seen.add(label)
        item = inputs[label]
        original = _as_stored(pydicom.dcmread(item.path), item.pixels)
        stored = stored.reshape(original.shape)
        if item.ink is None:
            assert np.array_equal(stored, original), label
            continue
        changed = (stored != original).reshape((*stored.shape[:3], -1)).any(axis=-1)
        assert changed[:, item.ink].mean() >= GLYPHS_CHANGED, label
    assert seen == set(inputs)


def _label_of_array(modality: str, stored: np.ndarray) -> str:
    if stored.shape[-1] == 3:
        return "sc_ct"
    return {("CT", 512): "ct", ("CT", 128): "clean_ct", ("MR", 484): "mr", ("CR", 384): "cr"}[
        (modality, stored.shape[-1])
    ]


def _as_stored(ds: pydicom.Dataset, pixels: np.ndarray) -> np.ndarray:
    """The input pixels as ingest stores them: CT in rounded Hounsfield units, others as decoded."""
    if str(ds.Modality) == "CT" and int(ds.get("SamplesPerPixel") or 1) == 1:
        hu = pixels.astype(float) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        return np.rint(hu).astype(np.int16)
    return pixels
