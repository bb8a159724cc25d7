"""Which instances a source has already delivered: keyed hashes of SOP Instance UIDs, kept in the dataset.

The state file ``DATASET/sources/<name>.json`` holds HMAC-SHA256 digests (keyed with the de-identification
key), so it contains no UID and cannot be linked back to a PACS without the key. A source fetches only
instances whose digest is absent; the digests of a batch are committed after the ingest of that batch
succeeded, so an interrupted run fetches the same instances again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from tasks.atomic import atomic_write_bytes
from tasks.errors import StorageError

_VERSION = 1


def instance_digest(key: bytes, sop_instance_uid: str) -> str:
    """Keyed, stable, non-reversible id of one SOP instance (hex, 32 chars); also its staging file stem."""
    mac = hmac.new(key, b"medflow-source-instance\x00" + sop_instance_uid.strip().encode("ascii"), hashlib.sha256)
    return mac.hexdigest()[:32]


class SeenInstances:
    """The set of instance digests a source delivered and the dataset ingested."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._key = key
        self._digests: set[str] = self._read(path)

    def __repr__(self) -> str:
        return f"SeenInstances({len(self._digests)} instances)"

    def __len__(self) -> int:
        return len(self._digests)

    @staticmethod
    def for_source(dataset: Path, source: str, key: bytes) -> SeenInstances:
        """The state of source ``source`` in dataset ``dataset``."""
        return SeenInstances(dataset / "sources" / f"{source}.json", key)

    def digest(self, sop_instance_uid: str) -> str:
        """The digest of a SOP Instance UID under this state's key."""
        return instance_digest(self._key, sop_instance_uid)

    def is_new(self, sop_instance_uid: str) -> bool:
        """True when the instance was never delivered."""
        return self.digest(sop_instance_uid) not in self._digests

    def __contains__(self, digest: object) -> bool:
        return digest in self._digests

    def commit(self, digests: set[str] | list[str]) -> None:
        """Add digests and write the state file atomically."""
        self._digests |= set(digests)
        payload = {"version": _VERSION, "digests": sorted(self._digests)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, json.dumps(payload, indent=0).encode("utf-8"))

    @staticmethod
    def _read(path: Path) -> set[str]:
        if not path.exists():
            return set()
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            if payload.get("version") != _VERSION:
                raise ValueError("version")
            return set(payload["digests"])
        except (OSError, ValueError, KeyError, TypeError):
            raise StorageError(
                f"source state file {path} is unreadable; delete it to fetch every instance again"
            ) from None
