"""OME-Zarr 0.5 ``ome`` attributes (multiscales with axes, units and scale) so viewers open the arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

OME_VERSION = "0.5"

_TYPES = {"t": "time", "z": "space", "y": "space", "x": "space", "c": "channel"}
_UNITS = {"time": "millisecond", "space": "millimeter"}


def ome_attrs(
    name: str,
    axes: Sequence[str],
    scale: Sequence[float | None],
    *,
    path: str = "0",
) -> dict[str, Any]:
    """The ``ome`` group attribute for one image at ``path``; ``None`` scale entries mean unknown (1.0, no unit).

    Raises ValueError for an axis order OME-Zarr 0.5 does not allow (time, then channel, then space).
    """
    rank = {"time": 0, "channel": 1, "space": 2}
    kinds = [rank[_TYPES[a]] for a in axes]
    if kinds != sorted(kinds) or not 2 <= kinds.count(2) <= 3:
        raise ValueError(f"axes {list(axes)} are not an OME-Zarr 0.5 order (time, channel, 2-3 space axes)")
    axis_list = []
    for axis, value in zip(axes, scale, strict=True):
        kind = _TYPES[axis]
        entry: dict[str, Any] = {"name": axis, "type": kind}
        if kind in _UNITS and value is not None:
            entry["unit"] = _UNITS[kind]
        axis_list.append(entry)
    return {
        "version": OME_VERSION,
        "multiscales": [
            {
                "name": name,
                "axes": axis_list,
                "datasets": [
                    {
                        "path": path,
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [float(v) if v else 1.0 for v in scale]}
                        ],
                    }
                ],
            }
        ],
    }
