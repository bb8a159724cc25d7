"""The plain-Python ingest: batching by series, storage of cines/volumes, audit balance, idempotent re-runs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pydicom
import pytest
import zarr
from pydicom.data import get_testdata_file

from tasks.deid.context import DeidContext
from tasks.deid.keys import DeidKey
from tasks.ingest.discover import discover_files, plan_batches
from tasks.ingest.folder import ingest_folder
from tasks.ingest.nodes import Ids, video_node
from tests.tasks.ingest.sources import copy_testdata, ct_series


@pytest.fixture(scope="module")
def ctx():
    return DeidContext.create(DeidKey(b"k" * 32), clean_pixels="off")


def test_batches_keep_ct_series_together(tmp_path):
    ct = ct_series(tmp_path / "ct", n=4)
    other = copy_testdata(tmp_path, ["MR_small.dcm", "SC_rgb.dcm", "rtplan.dcm"])
    batches = plan_batches(discover_files(tmp_path), batch_bytes=10**9, batch_files=2, min_batches=1)
    with_ct = [b for b in batches if any(p.endswith(".dcm") and "/ct/" in p for p in b)]
    assert len(with_ct) == 1 and sorted(with_ct[0]) == sorted(map(str, ct))
    flat = [p for b in batches for p in b]
    assert len(flat) == 7 and all(str(p) in flat for p in other)


def test_batches_weigh_compressed_cines_by_their_decoded_pixels(tmp_path):
    """A 225 kB JPEG cine decodes to 6.9 MB: batches are packed by that work, not by file bytes."""
    for i in range(4):
        copy_testdata(tmp_path / f"us{i}", ["examples_ybr_color.dcm"])
    slices = sorted(map(str, ct_series(tmp_path / "ct", n=4)))
    batches = plan_batches(discover_files(tmp_path), batch_bytes=8 * 10**6, batch_files=100, min_batches=1)
    cines_per_batch = [sum("/us" in p for p in b) for b in batches]
    assert cines_per_batch == [1, 1, 1, 1]  # by file bytes (0.9 MB in all) they would share one batch
    assert sorted(p for p in batches[0] if "/ct/" in p) == slices  # the series stays whole; most work first


def test_video_node_layout_view_and_ome():
    ds = pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm"))
    frames = ds.pixel_array
    ds.FrameTime = 40.0  # 25 fps
    node = video_node(ds, frames, Ids("P", "2.25.1", "2.25.2", "2.25.3"), target_fps=50, view_size=112, cleaning={})
    assert node.key == "2.25.3" and set(node.arrays) == {"0", "view"}
    view = node.arrays["view"].data
    assert view.shape == (2 * frames.shape[0] - 1, 112, 112) and view.dtype == np.uint8
    assert node.arrays["0"].chunks == (8, 240, 320, 3)
    assert node.row["source_fps"] == pytest.approx(25) and node.row["view_fps"] == 50
    ms = node.attrs["ome"]["multiscales"][0]  # colour is channel-last: viewers get the grayscale view
    assert [a["name"] for a in ms["axes"]] == ["t", "y", "x"] and ms["datasets"][0]["path"] == "view"
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"][0] == pytest.approx(20.0)  # 50 fps
    assert len(node.attrs["frame_times_ms"]) == frames.shape[0]
    json.dumps(node.attrs, allow_nan=False)


def test_ingest_folder_balanced_and_idempotent(tmp_path, ctx):
    src = tmp_path / "src"
    ct_series(src / "ct", n=3, spacing=1.5)
    copy_testdata(src, ["MR_small.dcm", "OBXXXX1A_2frame.dcm", "rtplan.dcm"])
    (src / "broken.dcm").write_bytes(b"DICM" * 10)
    dataset = tmp_path / "ds"
    first = ingest_folder(src, dataset, ctx, workers=1, run_id="a")
    assert (first.discovered, first.stored, first.skipped, first.quarantined) == (7, 5, 0, 2)
    assert first.balanced and first.arrays_written == 3
    manifest = pd.read_parquet(dataset / "manifest.parquet")
    assert sorted(manifest.kind) == ["video", "volume", "volume"]
    ct = manifest[manifest.modality == "CT"].iloc[0]
    assert ct.instance_id == ct.series_id and ct.zarr_key == f"{ct.series_id}/0"
    volume = zarr.open_group(dataset / "store.zarr", mode="r")[ct.zarr_key]
    assert volume.dtype == np.int16 and volume.shape == (3, 128, 128)
    assert volume.attrs["intensity"]["method"] == "ct-window"
    ref = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    hu = ref.pixel_array.astype(float) * float(ref.RescaleSlope) + float(ref.RescaleIntercept)
    np.testing.assert_array_equal(volume[0], np.rint(hu).astype(np.int16))
    assert ct.spacing_z == pytest.approx(1.5)
    video = manifest[manifest.kind == "video"].iloc[0]
    assert video.qc_status == "fail" and "frames" in video.qc_failures  # a 2-frame cine is too short to train on
    quarantined = [json.loads(x) for x in (dataset / "quarantine.jsonl").read_text().splitlines()]
    assert sorted(q["reason"] for q in quarantined) == ["not-dicom", "unsupported"]
    assert not any("broken" in json.dumps(q) or "rtplan" in json.dumps(q) for q in quarantined)

    second = ingest_folder(src, dataset, ctx, workers=1, run_id="b")
    assert (second.stored, second.skipped, second.quarantined, second.arrays_written) == (0, 5, 2, 0)
    assert second.new_rows == 0 and len(pd.read_parquet(dataset / "manifest.parquet")) == 3
    audit = [json.loads(x) for x in (dataset / "inputs.jsonl").read_text().splitlines()]
    assert len([a for a in audit if a["run_id"] == "b"]) == 7
    assert not (dataset / ".work" / "b").exists()


def test_manifest_recovers_rows_of_an_interrupted_run(tmp_path, ctx):
    src = tmp_path / "src"
    copy_testdata(src, ["MR_small.dcm"])
    dataset = tmp_path / "ds"
    ingest_folder(src, dataset, ctx, workers=1, run_id="a")
    (dataset / "manifest.parquet").unlink()  # as if the run died after writing the array
    again = ingest_folder(src, dataset, ctx, workers=1, run_id="b")
    assert again.skipped == 1 and again.new_rows == 1 and again.manifest_rows == 1


def test_normalisation_recorded_and_applied_at_load(tmp_path, ctx):
    from tasks.store.reader import intensity_params, load

    src = tmp_path / "src"
    ct_series(src / "ct", n=2)
    copy_testdata(src, ["emri_small.dcm", "examples_ybr_color.dcm"])
    dataset = tmp_path / "ds"
    ingest_folder(src, dataset, ctx, workers=1, run_id="a")
    manifest = pd.read_parquet(dataset / "manifest.parquet").set_index("modality")
    ct = load(dataset, manifest.loc["CT", "zarr_key"], normalise=True)
    assert ct.dtype == np.float32 and ct.min() >= 0.0 and ct.max() <= 1.0  # CT window → [0, 1]
    raw = load(dataset, manifest.loc["MR", "zarr_key"])
    mr = load(dataset, manifest.loc["MR", "zarr_key"], normalise=True)[raw != 0]
    assert intensity_params(dataset, manifest.loc["MR", "zarr_key"])["method"] == "zscore"
    assert abs(float(mr.mean())) < 1e-3 and abs(float(mr.std()) - 1) < 1e-3
    view_key = manifest.loc["US", "view_key"]
    video = intensity_params(dataset, view_key)
    assert video["method"] == "dataset-mean-std" and video["count"] == manifest.loc["US", "view_frames"]
    assert abs(float(load(dataset, view_key, normalise=True).mean())) < 1e-3
    assert load(dataset, view_key).dtype == np.uint8


def test_a_series_that_arrives_in_two_runs_is_one_volume(tmp_path, ctx):
    full = ct_series(tmp_path / "full", n=5, spacing=2.0)
    part = tmp_path / "part"
    part.mkdir()
    for path in full[::2]:  # slices 1, 3 and 5 arrive first
        shutil.copy(path, part / path.name)
    grown = tmp_path / "grown"
    first = ingest_folder(part, grown, ctx, workers=1, run_id="a")
    assert (first.stored, first.arrays_written) == (3, 1)
    second = ingest_folder(tmp_path / "full", grown, ctx, workers=1, run_id="b")
    assert (second.stored, second.skipped, second.arrays_written) == (2, 3, 1)  # the two new slices extend it
    at_once = tmp_path / "at-once"
    ingest_folder(tmp_path / "full", at_once, ctx, workers=1, run_id="c")
    manifest = pd.read_parquet(grown / "manifest.parquet")
    assert len(manifest) == 1 and manifest.iloc[0].n_source_instances == 5
    key = manifest.iloc[0].zarr_key
    grown_volume = zarr.open_group(grown / "store.zarr", mode="r")[key]
    reference = zarr.open_group(at_once / "store.zarr", mode="r")[key]
    assert grown_volume.shape == (5, 128, 128)
    np.testing.assert_array_equal(grown_volume[...], reference[...])  # same slices, same order, same HU
    assert manifest.iloc[0].spacing_z == pytest.approx(2.0)
    third = ingest_folder(tmp_path / "full", grown, ctx, workers=1, run_id="d")
    assert (third.stored, third.skipped, third.arrays_written) == (0, 5, 0)  # idempotent again
    staging = grown / ".staging"
    assert not staging.exists() or not any(staging.iterdir())  # the replaced node is gone, nothing half-written
    assert pd.read_parquet(grown / "manifest.parquet").iloc[0].frames == 5  # the row follows the replaced node
