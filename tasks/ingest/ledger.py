"""The ingest ledger ``DATASET/inputs.jsonl``: one line per discovered input per run, so nothing is dropped silently.

(Not an audit: the PHI audit is :mod:`tasks.audit`; this records what happened to each input.)
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path

from tasks.atomic import append_jsonl

LEDGER_FILE = "inputs.jsonl"


class Status(StrEnum):
    STORED = "stored"
    SKIPPED = "skipped"
    QUARANTINED = "quarantined"


def record_input(
    dataset: Path, *, source_id: str, status: Status, run_id: str, zarr_key: str | None, reason: str = ""
) -> None:
    """Append the fate of one input (keyed hash of its path, never the path)."""
    row = {"source_id": source_id, "status": str(status), "zarr_key": zarr_key, "run_id": run_id, "time": time.time()}
    if reason:
        row["reason"] = reason
    append_jsonl(Path(dataset) / LEDGER_FILE, row)
