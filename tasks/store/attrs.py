"""JSON-safe attribute values: pydicom and numpy values cast to plain Python before reaching Zarr.

A value zarr cannot serialise raises *after* the metadata cache was updated, poisoning the node,
so every attribute goes through :func:`json_safe` first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """Cast ``value`` to str/int/float/bool/None/list/dict; non-finite floats and bytes become None."""
    if value is None or type(value) in (bool, str):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, bytes | bytearray | memoryview):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, list | tuple | set) or type(value).__name__ == "MultiValue":
        return [json_safe(v) for v in value]
    if isinstance(value, str):  # str subclasses such as pydicom's DA, TM, UID, PersonName-like
        return str(value)
    try:  # pydicom DSfloat / IS and friends
        as_float = float(value)
    except (TypeError, ValueError):
        return str(value)
    if as_float.is_integer() and type(value).__name__ in ("IS", "ISfloat"):
        return int(as_float)
    return as_float if math.isfinite(as_float) else None
