"""Audit findings and the JSON report. A finding names a place and an attribute, never the value."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Finding:
    """One identifying value found: where (file relative to the dataset, and the place inside it) and which
    attribute of the originals it came from (keyword and tag, or ``source-path``)."""

    path: str
    where: str
    attributes: tuple[str, ...]
    kind: str = "value"  # value | ocr | structure
    encoding: str = ""
    count: int = 1


@dataclass
class AuditReport:
    """What was scanned and what was found."""

    dataset: str
    patterns: int = 0
    originals_read: int = 0
    originals_unreadable: int = 0
    files_scanned: int = 0
    bytes_scanned: int = 0
    files_skipped: dict[str, int] = field(default_factory=dict)
    arrays_ocr: int = 0
    frames_ocr: int = 0
    text_boxes_seen: int = 0
    prefect_database: str = "off"  # off | scanned | remote server | not SQLite | no database file
    prefect_files_scanned: int = 0
    findings: list[Finding] = field(default_factory=list)
    pattern_rule: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings

    def skip(self, why: str) -> None:
        self.files_skipped[why] = self.files_skipped.get(why, 0) + 1

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc["ok"] = self.ok
        doc["findings"] = [asdict(f) | {"attributes": list(f.attributes)} for f in self.findings]
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)
