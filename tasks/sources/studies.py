"""Study-complete detection: a study is complete when no new instance arrived for ``quiet_seconds``.

The tracker keeps, per study token, the instances received since the study was last reported, their
modalities and the time of the newest; :meth:`StudyTracker.due` hands out the studies that went quiet, once
each, and forgets them. A late instance of a reported study opens a new round for that study (a new, small
ingest run). Counts and DICOM modality codes only: nothing here is PHI.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CompletedStudy:
    """What the ``medflow.study.received`` event carries: the keyed token, counts, modality codes."""

    token: str
    instances: int
    bytes: int
    modalities: dict[str, int]
    last_received: float  # wall-clock time of the newest instance (epoch seconds)

    def payload(self, listener: str) -> dict[str, object]:
        """The event payload (no PHI: counts, sizes and DICOM modality codes)."""
        return {
            "listener": listener,
            "study": self.token,
            "instances": self.instances,
            "bytes": self.bytes,
            "modalities": dict(sorted(self.modalities.items())),
            "last_received": self.last_received,
        }


@dataclass
class _Round:
    instances: int = 0
    bytes: int = 0
    modalities: Counter = field(default_factory=Counter)
    newest: float = 0.0  # monotonic
    newest_wall: float = 0.0


class StudyTracker:
    """Thread-safe record of instances per study since each study was last reported complete."""

    def __init__(self, quiet_seconds: float, clock=time.monotonic) -> None:
        self.quiet_seconds = quiet_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._rounds: dict[str, _Round] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._rounds)

    def record(self, token: str, modality: str, size: int, *, age_s: float = 0.0, count: int = 1) -> None:
        """Note ``count`` instances of study ``token`` that arrived ``age_s`` seconds ago."""
        now = self._clock() - age_s
        with self._lock:
            entry = self._rounds.setdefault(token, _Round())
            entry.instances += count
            entry.bytes += size
            entry.modalities[modality] += count
            if now >= entry.newest:
                entry.newest = now
                entry.newest_wall = time.time() - age_s

    def restore(self, study: CompletedStudy) -> None:
        """Put a handed-out study back (its report failed), to be handed out again ``quiet_seconds`` from now."""
        size = study.bytes
        for modality, count in study.modalities.items():
            self.record(study.token, modality, size, count=count)
            size = 0

    def due(self) -> list[CompletedStudy]:
        """The studies quiet for ``quiet_seconds``, oldest first; each is handed out once per round."""
        now = self._clock()
        with self._lock:
            ready = sorted(
                (t for t, e in self._rounds.items() if now - e.newest >= self.quiet_seconds),
                key=lambda t: self._rounds[t].newest,
            )
            done = [self._rounds.pop(t) for t in ready]
        return [
            CompletedStudy(t, e.instances, e.bytes, dict(e.modalities), e.newest_wall)
            for t, e in zip(ready, done, strict=True)
        ]

    def next_due_in(self) -> float | None:
        """Seconds until the next study goes quiet (None: nothing pending)."""
        now = self._clock()
        with self._lock:
            if not self._rounds:
                return None
            return max(0.0, min(e.newest for e in self._rounds.values()) + self.quiet_seconds - now)
