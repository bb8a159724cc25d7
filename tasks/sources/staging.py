"""The local staging folder a source fetches into and the ingest reads from.

Staged files are named ``<digest>.dcm`` (keyed hash of the SOP Instance UID), so no file name carries PHI.
The folder lives under the state directory, never inside the dataset: it holds identifiable originals
until the ingest of the batch succeeded, then it is emptied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tasks.atomic import atomic_write_bytes


@dataclass
class FetchResult:
    """What one fetch did: counts (JSON-safe) and the digests of the staged instances."""

    source: str
    staging: Path
    found: int = 0
    skipped: int = 0
    fetched: int = 0
    digests: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """Counts only, safe for logs, Prefect results and artifacts."""
        return {
            "source": self.source,
            "found": self.found,
            "already_ingested": self.skipped,
            "fetched": self.fetched,
        }


def staging_dir(state_dir: Path, source: str) -> Path:
    """``STATE_DIR/staging/<source>``, created with owner-only permissions."""
    path = state_dir / "staging" / source
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def stage_bytes(staging: Path, digest: str, data: bytes) -> Path:
    """Publish one Part-10 file atomically as ``<digest>.dcm``."""
    path = staging / f"{digest}.dcm"
    atomic_write_bytes(path, data)
    return path


def clear_staged(staging: Path, digests: list[str]) -> int:
    """Delete the staged files of ``digests`` after a successful ingest; return how many were removed."""
    removed = 0
    for digest in digests:
        path = staging / f"{digest}.dcm"
        if path.exists():
            path.unlink()
            removed += 1
    return removed
