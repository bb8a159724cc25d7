"""The Zarr v3 store: one group per stored object, published atomically by a directory rename.

Layout (``DATASET/store.zarr``)::

    <key>/            group: OME-Zarr ``ome`` attrs + ``medflow`` attrs
    <key>/0           native array, video (T,H,W[,C]) or volume (Z,Y,X)
    <key>/view        training view of a video (T,112,112) uint8

A node is written completely under ``DATASET/.staging/<random>`` (same file system) and then moved
into place with one ``os.rename``, so a reader or an interrupted run never sees a partial array.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec
from zarr.storage import LocalStore

from tasks.errors import QuarantineReason, StorageError
from tasks.store.attrs import json_safe
from tasks.store.exchange import exchange

log = logging.getLogger(__name__)

STORE_DIR = "store.zarr"
STAGING_DIR = ".staging"
VIDEO_CHUNK_FRAMES = 8  # a random 32-frame clip decodes ~39 frames (16: ~47), in 4-5 parallel chunks
VOLUME_CHUNK = (32, 256, 256)
ZSTD_LEVEL = 7  # 1.18x FFV1's bytes on color3d (5: 1.23x), decodes slightly faster; compresses ~190 MB/s


@dataclass
class ArraySpec:
    """One array of a node: data, inner chunk shape, attributes, axis names; the whole array is one shard.

    ``dimension_names`` (Zarr v3 metadata, e.g. ``("t", "y", "x")``) is required by OME-Zarr 0.5 for every array an
    ``ome`` multiscale points at, and must equal its axes there; :func:`write_node` checks it."""

    data: np.ndarray
    chunks: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    dimension_names: tuple[str, ...] | None = None


def video_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(8, H, W[, C]): a 32-frame clip touches 4–5 chunks inside the array's single shard."""
    return (min(VIDEO_CHUNK_FRAMES, shape[0]), *shape[1:])


def volume_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """About (32, 256, 256), clipped to the volume."""
    return tuple(min(c, s) for c, s in zip(VOLUME_CHUNK, shape, strict=True))


def shard_shape(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    """One shard spanning the array, rounded up to whole chunks."""
    return tuple(-(-s // c) * c for s, c in zip(shape, chunks, strict=True))


def store_path(dataset: Path) -> Path:
    return Path(dataset) / STORE_DIR


def ensure_root(dataset: Path) -> Path:
    """Create the root group once (idempotent); return the store path."""
    root = store_path(dataset)
    if not (root / "zarr.json").exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        zarr.open_group(store=LocalStore(root), mode="a", zarr_format=3)
    return root


def node_exists(dataset: Path, key: str) -> bool:
    """Whether ``key`` was published (its group metadata exists)."""
    return (store_path(dataset) / key / "zarr.json").is_file()


def node_attrs(dataset: Path, key: str) -> dict[str, Any]:
    """The attributes of node ``key``, from its group metadata alone (no array is opened)."""
    return dict(json.loads((store_path(dataset) / key / "zarr.json").read_text()).get("attributes", {}))


def read_node(dataset: Path, key: str, array: str = "0") -> tuple[np.ndarray, dict[str, Any]]:
    """The data of array ``array`` of node ``key`` and the node's attributes."""
    group = zarr.open_group(store=LocalStore(store_path(dataset) / key), mode="r", zarr_format=3)
    return np.asarray(group[array][...]), dict(group.attrs)


def check_ome_arrays(attrs: Mapping[str, Any], arrays: Mapping[str, ArraySpec]) -> None:
    """Every array an ``ome`` multiscale of ``attrs`` points at exists, with ``dimension_names`` equal to its axes.

    Raises ValueError naming the array path: a node that OME readers would reject is never written."""
    for multiscale in (attrs.get("ome") or {}).get("multiscales", []):
        axes = tuple(axis["name"] for axis in multiscale["axes"])
        for dataset in multiscale["datasets"]:
            spec = arrays.get(dataset["path"])
            if spec is None:
                raise ValueError(f"OME multiscale points at array {dataset['path']!r}, which the node does not have")
            if spec.dimension_names != axes or spec.data.ndim != len(axes):
                raise ValueError(
                    f"array {dataset['path']!r}: dimension_names {spec.dimension_names} and rank {spec.data.ndim} "
                    f"must match the OME axes {axes}"
                )


def write_node(
    dataset: Path, key: str, arrays: Mapping[str, ArraySpec], attrs: dict[str, Any], *, replace: bool = False
) -> bool:
    """Write group ``key`` with ``arrays`` atomically. False if ``key`` already exists (nothing written), unless
    ``replace``: then the new node takes the old one's place in one step (readers see the old or the new node,
    never neither or a mix), and the old one is deleted."""
    check_ome_arrays(attrs, arrays)
    root = ensure_root(dataset)
    target = root / key
    if node_exists(dataset, key) and not replace:
        return False
    staging = Path(dataset) / STAGING_DIR / uuid.uuid4().hex
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        group = zarr.open_group(store=LocalStore(staging), mode="w", zarr_format=3)
        group.attrs.update(json_safe(attrs))
        for name, spec in arrays.items():
            array = group.create_array(
                name,
                shape=spec.data.shape,
                dtype=spec.data.dtype,
                chunks=spec.chunks,
                shards=shard_shape(spec.data.shape, spec.chunks),
                compressors=ZstdCodec(level=ZSTD_LEVEL),
                fill_value=0,
                attributes=json_safe(spec.attrs),
                dimension_names=spec.dimension_names,
            )
            array[...] = spec.data
        target.parent.mkdir(parents=True, exist_ok=True)
        if replace and node_exists(dataset, key):
            exchange(staging, target)  # the old node is now at ``staging`` and goes below
            shutil.rmtree(staging, ignore_errors=True)
            log.debug("replaced %s (%d arrays)", key, len(arrays))
            return True
        try:
            os.rename(staging, target)
        except OSError:
            if node_exists(dataset, key):  # another worker published the same key first
                return False
            raise
    except OSError as exc:
        raise StorageError(
            f"cannot write array {key} into {STORE_DIR}; check free space and permissions",
            reason=QuarantineReason.WRITE_FAILED,
        ) from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.debug("stored %s (%d arrays)", key, len(arrays))
    return True


def clear_staging(dataset: Path) -> int:
    """Remove leftovers of interrupted writes; call only when no other run is writing. Returns count."""
    staging = Path(dataset) / STAGING_DIR
    if not staging.exists():
        return 0
    leftovers = list(staging.iterdir())
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return len(leftovers)
