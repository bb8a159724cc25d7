"""Judge a Zarr v3 store with the OME ecosystem's own tools, in their own environment (``.venv-validators``).

- ``ome-zarr-models`` (the OME-Zarr 0.5 reference models) validates every group that carries ``ome`` attributes (an
  image with its ``labels``, a ``labels`` group, an image-label);
- ``ome-zarr`` (ome-zarr-py) reads each such image's multiscales and the arrays they point at;
- tensorstore reads every array in the store.

It imports nothing of medflow. It prints one JSON object; the caller compares the digests with its own reads::

    {"models": {group: "ok" | error},
     "ome_zarr": {group: {"axes": [...], "arrays": [{"shape": [...], "sha256": ...}]} | {"error": ...}},
     "tensorstore": {array: {"shape": [...], "dtype": ..., "dimension_names": [...], "sha256": ...} | {"error": ...}}}

Usage: ``.venv-validators/bin/python tests/validators/ome_check.py STORE.zarr``
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Multiscales, Reader
from ome_zarr_models.v05 import Image, ImageLabel, Labels


def digest(data: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()


def error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def validate_models(group: Path, ome: dict[str, Any]) -> str:
    """An image (with any ``labels`` inside it), a ``labels`` group, or an image-label, by what ``ome`` declares."""
    model = Labels if "labels" in ome else ImageLabel if "image-label" in ome else Image
    try:
        model.from_zarr(zarr.open_group(group, mode="r", zarr_format=3))
    except Exception as exc:  # the validator's verdict, reported as text
        return error(exc)
    return "ok"


def read_ome_zarr(group: Path) -> dict[str, Any]:
    try:
        nodes = [n for n in Reader(parse_url(str(group)))() if any(isinstance(s, Multiscales) for s in n.specs)]
        if len(nodes) != 1:
            return {"error": f"ome-zarr found {len(nodes)} multiscale images"}
        node = nodes[0]
        return {
            "axes": [a["name"] for a in node.metadata["axes"]],
            "arrays": [{"shape": list(d.shape), "sha256": digest(np.asarray(d.compute()))} for d in node.data],
        }
    except Exception as exc:
        return {"error": error(exc)}


def read_tensorstore(array: Path) -> dict[str, Any]:
    try:
        handle = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(array)}}, read=True).result()
        data = handle.read().result()
        return {
            "shape": list(handle.shape),
            "dtype": str(data.dtype),
            "dimension_names": list(handle.domain.labels),
            "sha256": digest(data),
        }
    except Exception as exc:
        return {"error": error(exc)}


def main(store: Path) -> int:
    report: dict[str, dict[str, Any]] = {"models": {}, "ome_zarr": {}, "tensorstore": {}}
    for meta in sorted(store.rglob("zarr.json")):
        node = json.loads(meta.read_text())
        rel = meta.parent.relative_to(store).as_posix()
        if node.get("node_type") == "array":
            report["tensorstore"][rel] = read_tensorstore(meta.parent)
        elif "ome" in node.get("attributes", {}):
            ome = node["attributes"]["ome"]
            report["models"][rel] = validate_models(meta.parent, ome)
            if "labels" not in ome:
                report["ome_zarr"][rel] = read_ome_zarr(meta.parent)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
