"""The quarantine log: one JSON line per input that was not released, with a machine-readable reason."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tasks.atomic import append_jsonl
from tasks.errors import MedflowError, QuarantineReason

QUARANTINE_FILE = "quarantine.jsonl"


@dataclass(frozen=True)
class QuarantineRecord:
    """What is known about a rejected input, without PHI: a keyed hash of its path, the step and reason."""

    source_id: str
    step: str
    reason: QuarantineReason
    detail: str = ""
    time: float = field(default_factory=time.time)

    @classmethod
    def from_error(cls, source_id: str, error: MedflowError) -> QuarantineRecord:
        return cls(source_id=source_id, step=error.step, reason=error.reason, detail=str(error))


def quarantine(root: Path, record: QuarantineRecord) -> None:
    """Append ``record`` to ``root/quarantine.jsonl``."""
    row = asdict(record)
    row["reason"] = str(record.reason)
    append_jsonl(root / QUARANTINE_FILE, row)
