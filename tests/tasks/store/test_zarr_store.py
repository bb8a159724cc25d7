"""Zarr store: chunk/shard layout, OME-Zarr metadata, JSON-safe attrs, atomic and idempotent writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pydicom
import pytest
import zarr
from pydicom.data import get_testdata_file

from tasks.errors import StorageError
from tasks.store.attrs import json_safe
from tasks.store.ome import ome_attrs
from tasks.store.zarr_store import (
    STAGING_DIR,
    ArraySpec,
    clear_staging,
    node_exists,
    shard_shape,
    store_path,
    video_chunks,
    volume_chunks,
    write_node,
)


def test_video_chunks_inside_one_shard(tmp_path):
    video = np.random.default_rng(0).integers(0, 255, (40, 24, 32, 3), dtype=np.uint8)
    assert write_node(tmp_path, "2.25.1", {"0": ArraySpec(video, video_chunks(video.shape))}, {"modality": "US"})
    array = zarr.open_group(store_path(tmp_path))["2.25.1"]["0"]
    assert array.chunks == (8, 24, 32, 3)
    assert array.shards == (40, 24, 32, 3)
    np.testing.assert_array_equal(array[5:37], video[5:37])  # lossless random clip
    files = [f for f in (store_path(tmp_path) / "2.25.1" / "0").rglob("*") if f.is_file() and f.name != "zarr.json"]
    assert len(files) == 1  # one shard file per video
    codecs = json.loads((store_path(tmp_path) / "2.25.1" / "0" / "zarr.json").read_text())["codecs"]
    assert codecs[0]["name"] == "sharding_indexed"
    assert any(c["name"] == "zstd" for c in codecs[0]["configuration"]["codecs"])


def test_volume_chunks_and_shard_rounding():
    assert volume_chunks((300, 512, 512)) == (32, 256, 256)
    assert volume_chunks((10, 64, 64)) == (10, 64, 64)
    assert shard_shape((300, 512, 512), (32, 256, 256)) == (320, 512, 512)


def test_ome_attrs_shape():
    ome = ome_attrs("x", ["t", "y", "x"], [20.0, 0.3, None])
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "y", "x"]
    assert ms["axes"][0] == {"name": "t", "type": "time", "unit": "millisecond"}
    assert ms["axes"][1]["unit"] == "millimeter" and "unit" not in ms["axes"][2]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [20.0, 0.3, 1.0]


def test_ome_attrs_refuse_an_order_ome_does_not_allow():
    with pytest.raises(ValueError, match="not an OME-Zarr"):
        ome_attrs("x", ["t", "y", "x", "c"], [20.0, 0.3, 0.3, 1.0])  # channel after space
    assert ome_attrs("x", ["t", "c", "y", "x"], [20.0, 1.0, 0.3, 0.3])["version"] == "0.5"


def test_write_node_refuses_an_ome_image_without_matching_dimension_names(tmp_path):
    video = np.zeros((4, 8, 8), np.uint8)
    ome = {"ome": ome_attrs("k", ["t", "y", "x"], [20.0, 0.3, 0.3])}
    with pytest.raises(ValueError, match="dimension_names"):
        write_node(tmp_path, "k", {"0": ArraySpec(video, (4, 8, 8))}, ome)
    with pytest.raises(ValueError, match="dimension_names"):
        write_node(tmp_path, "k", {"0": ArraySpec(video, (4, 8, 8), dimension_names=("z", "y", "x"))}, ome)
    with pytest.raises(ValueError, match="does not have"):
        write_node(tmp_path, "k", {"1": ArraySpec(video, (4, 8, 8), dimension_names=("t", "y", "x"))}, ome)
    assert not node_exists(tmp_path, "k")
    assert write_node(tmp_path, "k", {"0": ArraySpec(video, (4, 8, 8), dimension_names=("t", "y", "x"))}, ome)
    stored = json.loads((tmp_path / "store.zarr" / "k" / "0" / "zarr.json").read_text())
    assert stored["dimension_names"] == ["t", "y", "x"]


def test_json_safe_casts_pydicom_values():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    safe = json_safe(
        {
            "spacing": ds.PixelSpacing,
            "thickness": ds.SliceThickness,
            "np": np.float32(1.5),
            "nan": float("nan"),
            "b": b"\x00",
            "arr": np.arange(3),
            "uid": ds.SOPClassUID,
        }
    )
    json.dumps(safe, allow_nan=False)
    assert safe["spacing"] == [float(v) for v in ds.PixelSpacing] and safe["nan"] is None and safe["b"] is None
    assert safe["arr"] == [0, 1, 2] and type(safe["uid"]) is str


def test_write_is_idempotent_and_leaves_no_staging(tmp_path):
    data = np.ones((2, 4, 4), dtype=np.uint8)
    assert write_node(tmp_path, "k", {"0": ArraySpec(data, (1, 4, 4))}, {"v": 1})
    assert not write_node(tmp_path, "k", {"0": ArraySpec(data * 2, (1, 4, 4))}, {"v": 2})
    group = zarr.open_group(store_path(tmp_path))["k"]
    assert group.attrs["v"] == 1 and int(group["0"][0, 0, 0]) == 1
    assert list((tmp_path / STAGING_DIR).iterdir()) == []


def test_failed_write_publishes_nothing(tmp_path):
    good = np.ones((2, 4, 4), dtype=np.uint8)
    with pytest.raises(AttributeError):
        write_node(tmp_path, "bad", {"0": ArraySpec(good, (1, 4, 4)), "1": ArraySpec(object(), (1,))}, {})  # type: ignore[arg-type]
    assert not node_exists(tmp_path, "bad")
    assert not (store_path(tmp_path) / "bad").exists()
    assert list((tmp_path / STAGING_DIR).iterdir()) == []


def test_interrupted_write_is_invisible_and_cleared(tmp_path):
    # simulate a killed worker: a staged node that was never renamed into the store
    data = np.ones((2, 4, 4), dtype=np.uint8)
    write_node(tmp_path, "done", {"0": ArraySpec(data, (1, 4, 4))}, {})
    staged = tmp_path / STAGING_DIR / "deadbeef"
    os.makedirs(staged / "0")
    (staged / "zarr.json").write_text("{}")
    assert sorted(zarr.open_group(store_path(tmp_path)).group_keys()) == ["done"]
    assert clear_staging(tmp_path) == 1 and not staged.exists()


def test_unpublishable_key_raises_storage_error(tmp_path):
    data = np.ones((1, 2, 2), dtype=np.uint8)
    write_node(tmp_path, "a", {"0": ArraySpec(data, (1, 2, 2))}, {})
    (store_path(tmp_path) / "b").write_text("not a directory")  # the rename target cannot be replaced
    with pytest.raises(StorageError, match="check free space and permissions"):
        write_node(tmp_path, "b", {"0": ArraySpec(data, (1, 2, 2))}, {})
    assert list((tmp_path / STAGING_DIR).iterdir()) == []
