"""OME-Zarr 0.5 ``labels`` next to an image: ``<key>/labels/<name>/0``, an integer array on the image's own grid.

The labels group is written whole under the dataset's staging folder and moved into the node in one rename (a
re-import replaces it in one exchange), so readers see the old labels or the new, never a mix; the image's own
arrays and attributes are not touched.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from tasks.store.exchange import exchange
from tasks.store.zarr_store import STAGING_DIR, node_attrs, node_exists, shard_shape, store_path

LABELS = "labels"


def image_grid(dataset: Path, key: str) -> tuple[str, list[dict[str, Any]], list[float], tuple[int, ...]]:
    """The OME image of node ``key``: array path, axes, scale and shape (ValueError when it has no OME image)."""
    if not node_exists(dataset, key):
        raise ValueError("the node is not in the store")
    ome = node_attrs(dataset, key).get("ome")
    if not ome or not ome.get("multiscales"):
        raise ValueError("the node has no OME image to put labels next to")
    multiscale = ome["multiscales"][0]
    first = multiscale["datasets"][0]
    scale = next(t["scale"] for t in first["coordinateTransformations"] if t["type"] == "scale")
    shape = zarr.open_array(store_path(dataset) / key / first["path"], mode="r").shape
    return first["path"], multiscale["axes"], list(scale), tuple(shape)


def write_label_image(dataset: Path, key: str, name: str, data: np.ndarray, properties: list[dict[str, Any]],
                      colors: dict[int, tuple[int, int, int, int]]) -> None:  # fmt: skip
    """Write (or replace) the labels group of node ``key`` with one label image ``name`` of ``data``."""
    _, axes, scale, shape = image_grid(dataset, key)
    if data.shape != shape or data.dtype.kind not in "ui":
        raise ValueError(f"label data must be an integer array of the image's shape {shape}, got {data.shape}")
    dims = tuple(a["name"] for a in axes)
    staging = Path(dataset) / STAGING_DIR / uuid.uuid4().hex
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        root = zarr.open_group(store=LocalStore(staging), mode="w", zarr_format=3)
        root.attrs.update({"ome": {"version": "0.5", "labels": [name]}})
        image = root.create_group(name)
        image.attrs.update({"ome": {
            "version": "0.5",
            "multiscales": [{"name": name, "axes": axes, "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}]}],
            "image-label": {
                "version": "0.5",
                "colors": [{"label-value": v, "rgba": list(c)} for v, c in sorted(colors.items())],
                "properties": properties,
                "source": {"image": "../../"},
            },
        }})  # fmt: skip
        chunks = (min(8, shape[0]), *shape[1:]) if len(shape) == 3 else shape
        array = image.create_array("0", shape=shape, dtype=data.dtype, chunks=chunks, shards=shard_shape(shape, chunks),
                                   fill_value=0, dimension_names=dims)  # fmt: skip
        array[...] = data
        target = store_path(dataset) / key / LABELS
        if target.exists():
            exchange(staging, target)  # the old labels are now at ``staging`` and go below
        else:
            os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
