"""Server-side FLARE components: a per-round record of aggregate metrics, and a log of what the sites sent.

Both write JSON lines into the server's run folder of the job; neither changes what it sees.
``TrafficLog`` records the *structure* of every task result a site sends (headers, metadata, metrics, the name,
shape and dtype of every tensor, never tensor values), so what leaves a site can be audited and tested.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from nvflare.apis.event_type import EventType
from nvflare.apis.filter import Filter
from nvflare.apis.fl_component import FLComponent
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.app_event_type import AppEventType

ROUNDS_FILE = "rounds.jsonl"
TRAFFIC_FILE = "traffic.jsonl"
_MAX_TEXT = 500


def _run_dir(fl_ctx: FLContext) -> Path:
    return Path(fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id()))


def _append(path: Path, record: dict[str, Any], lock: threading.Lock) -> None:
    with lock, path.open("a") as fh:
        fh.write(json.dumps(record, default=str) + "\n")


def describe(value: Any, depth: int = 0) -> Any:
    """A JSON-able picture of ``value``: containers recursed, arrays as shape/dtype, text and numbers as they are,
    objects as their type and ``props`` (what an FL context carries)."""
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        return {"array": list(shape), "dtype": str(value.dtype)}
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, bytes):
        return {"bytes": len(value)}
    if depth > 12:
        return {"type": type(value).__name__}
    if isinstance(value, dict):
        return {str(k): describe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [describe(v, depth + 1) for v in value]
    props = getattr(value, "props", None)  # an FL context or a client: the properties it carries
    if isinstance(props, dict):
        return {"type": type(value).__name__, "props": describe(props, depth + 1)}
    return {"type": type(value).__name__}

class TrafficLog(Filter):
    """Task-result filter on the server: appends one line per result received (sender, round, structure)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        peer = fl_ctx.get_peer_context()
        record = {
            "time": time.time(),
            "site": peer.get_identity_name() if peer else None,
            "round": fl_ctx.get_prop(AppConstants.CURRENT_ROUND),
            "message": describe(dict(shareable)),
        }
        _append(_run_dir(fl_ctx) / TRAFFIC_FILE, record, self._lock)
        return shareable


class RoundRecorder(FLComponent):
    """Appends the round number, site count and aggregated (weighted mean) metrics after each aggregation."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if event_type == EventType.START_RUN:
            (_run_dir(fl_ctx) / ROUNDS_FILE).unlink(missing_ok=True)
        if event_type != AppEventType.AFTER_AGGREGATION:
            return
        result = fl_ctx.get_prop(AppConstants.AGGREGATION_RESULT)
        meta = getattr(result, "meta", None) or {}
        metrics = {k: float(v) for k, v in (getattr(result, "metrics", None) or {}).items()
                   if isinstance(v, int | float)}  # fmt: skip
        record = {"round": fl_ctx.get_prop(AppConstants.CURRENT_ROUND), "sites": meta.get("nr_aggregated"),
                  "metrics": metrics, "time": time.time()}  # fmt: skip
        _append(_run_dir(fl_ctx) / ROUNDS_FILE, record, self._lock)
