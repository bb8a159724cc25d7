"""Reading arrays back, with the recorded intensity normalisation applied at load (never baked into the store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from tasks.normalize.intensity import apply
from tasks.store.zarr_store import store_path


def intensity_params(dataset: Path, key: str) -> dict | None:
    """Parameters for ``key`` (``<node>/0`` or ``<node>/view``): volume attrs, else the dataset's video mean/std."""
    root = zarr.open_group(store_path(dataset), mode="r")
    array = root[key]
    if "intensity" in array.attrs:
        return dict(array.attrs["intensity"])
    if key.endswith("/view"):
        return dict(root.attrs.get("intensity", {}).get("video", {})) or None
    return None


def load(dataset: Path, key: str, *, start: int = 0, stop: int | None = None, normalise: bool = False) -> np.ndarray:
    """Frames/slices ``start:stop`` of ``key``; float32 normalised with the recorded parameters when asked."""
    array = zarr.open_array(store_path(dataset) / key, mode="r")
    data = array[start:stop]
    if not normalise:
        return data
    params = intensity_params(dataset, key)
    return apply(data, params) if params else data.astype(np.float32)
