"""The seen-instance state: keyed digests, persisted atomically, no UID on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.errors import StorageError
from tasks.sources import SeenInstances, instance_digest

UID = "1.2.840.113619.2.55.3.604688119.971.1234567890.123"


def test_digest_is_keyed_and_stable() -> None:
    assert instance_digest(b"a" * 32, UID) == instance_digest(b"a" * 32, UID)
    assert instance_digest(b"a" * 32, UID) != instance_digest(b"b" * 32, UID)
    assert len(instance_digest(b"a" * 32, UID)) == 32


def test_commit_persists_and_reloads_without_uids(tmp_path: Path) -> None:
    seen = SeenInstances.for_source(tmp_path, "pacs", b"k" * 32)
    assert seen.is_new(UID)
    seen.commit([seen.digest(UID)])

    reloaded = SeenInstances.for_source(tmp_path, "pacs", b"k" * 32)
    assert not reloaded.is_new(UID)
    assert len(reloaded) == 1
    assert UID not in reloaded.path.read_text()
    assert reloaded.path == tmp_path / "sources" / "pacs.json"


def test_corrupt_state_is_a_storage_error_with_remedy(tmp_path: Path) -> None:
    path = tmp_path / "sources" / "pacs.json"
    path.parent.mkdir()
    path.write_text("{not json")
    with pytest.raises(StorageError, match="delete it"):
        SeenInstances.for_source(tmp_path, "pacs", b"k" * 32)
