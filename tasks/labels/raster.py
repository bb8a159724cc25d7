"""Draw MD.ai geometry (pixels of the original image) onto a stored image's grid: pure numpy/OpenCV."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def _points(vertices: Any, sy: float, sx: float) -> np.ndarray | None:
    try:
        pts = np.asarray(vertices, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        return None
    if len(pts) == 0 or not np.isfinite(pts).all():
        return None
    return np.round(pts * [sx, sy]).astype(np.int32)


def draw(plane: np.ndarray, mode: str, data: dict[str, Any], value: int, sy: float = 1.0, sx: float = 1.0) -> int:
    """Mark ``plane`` (H, W) with ``value`` where the geometry lies; returns the pixels marked (0: nothing drawable)."""
    before = plane == value
    if mode == "bbox":
        try:
            x, y, w, h = (float(data[k]) for k in ("x", "y", "width", "height"))
        except (KeyError, TypeError, ValueError):
            return 0
        y0, y1 = max(0, round(y * sy)), min(plane.shape[0], round((y + h) * sy))
        x0, x1 = max(0, round(x * sx)), min(plane.shape[1], round((x + w) * sx))
        plane[y0:y1, x0:x1] = value
    elif mode == "location":
        pts = _points([[data.get("x"), data.get("y")]], sy, sx)
        if pts is None or not (0 <= pts[0, 1] < plane.shape[0] and 0 <= pts[0, 0] < plane.shape[1]):
            return 0
        plane[pts[0, 1], pts[0, 0]] = value
    elif mode in ("polygon", "freeform", "line"):
        pts = _points(data.get("vertices"), sy, sx)
        if pts is None:
            return 0
        if mode == "line":
            cv2.polylines(plane, [pts], False, int(value), 1)
        else:
            cv2.fillPoly(plane, [pts], int(value))
    elif mode == "mask":
        fore = [p for p in (_points(v, sy, sx) for v in data.get("foreground") or []) if p is not None]
        if not fore:
            return 0
        layer = np.zeros(plane.shape, np.uint8)
        cv2.fillPoly(layer, fore, 1)
        back = [p for p in (_points(v, sy, sx) for v in data.get("background") or []) if p is not None]
        if back:
            cv2.fillPoly(layer, back, 0)
        plane[layer > 0] = value
    else:
        return 0
    return int(((plane == value) & ~before).sum())
