"""The listener's staging area: durable keyed files, claims that take exactly what is staged, crash leftovers."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from tasks.atomic import TEMP_PREFIX
from tasks.errors import ConfigError
from tasks.sources.inbox import Inbox, check_token, study_token
from tasks.sources.seen import instance_digest

KEY = b"k" * 32
STUDY = "1.2.840.113619.2.55.3.604688119.971.1234567890.123"


def _stage(inbox: Inbox, study: str, n: int) -> tuple[str, list[str]]:
    token = study_token(KEY, study)
    digests = [instance_digest(KEY, f"{study}.{i}") for i in range(n)]
    for i, digest in enumerate(digests):
        inbox.write(token, digest, b"DICM" + bytes([i]) * 100)
    return token, digests


def test_instances_are_staged_under_keyed_names(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "push")
    token, digests = _stage(inbox, STUDY, 3)

    names = sorted(p.relative_to(inbox.root).as_posix() for p in inbox.root.rglob("*") if p.is_file())
    assert names == sorted(f"{token}/{d}.dcm" for d in digests)
    assert STUDY not in "".join(names) and token != study_token(b"x" * 32, STUDY)
    assert (inbox.root.stat().st_mode & 0o777) == 0o700
    assert inbox.staged_bytes() == 3 * 104
    (pending,) = inbox.pending()
    assert (pending.token, len(pending.files), pending.bytes) == (token, 3, 312)


def test_a_claim_takes_what_is_staged_and_later_instances_stay(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "push")
    token, _ = _stage(inbox, STUDY, 2)

    with inbox.claim(token, "run-1") as claimed:
        assert claimed is not None and len(list(claimed.glob("*.dcm"))) == 2
        late = instance_digest(KEY, "late")
        inbox.write(token, late, b"DICMlate")  # arrives while the ingest runs
        assert inbox.pending()[0].files == (inbox.study_dir(token) / f"{late}.dcm",)  # the running claim is not
    assert not claimed.exists()
    with inbox.claim(token, "run-2") as second:
        assert [p.stem for p in second.glob("*.dcm")] == [late]
    assert not inbox.study_dir(token).exists()  # nothing left: the study folder goes too
    with inbox.claim(token, "run-3") as nothing:
        assert nothing is None


def test_a_failed_ingest_leaves_its_claim_for_the_next_run(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "push")
    token, digests = _stage(inbox, STUDY, 2)
    with pytest.raises(RuntimeError), inbox.claim(token, "run-1"):
        raise RuntimeError("ingest failed")
    assert len(inbox.pending()[0].files) == 2  # the abandoned claim counts as pending again
    with inbox.claim(token, "run-2") as claimed:
        assert sorted(p.stem for p in claimed.glob("*.dcm")) == sorted(digests)


def test_a_claim_held_by_a_running_ingest_is_not_taken(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "push")
    token, _ = _stage(inbox, STUDY, 1)
    running = inbox.study_dir(token) / "claim-other"
    running.mkdir()
    os.replace(next(inbox.study_dir(token).glob("*.dcm")), running / "a.dcm")
    fd = os.open(running / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as the other run's process holds it
    try:
        assert inbox.pending() == []
        with inbox.claim(token, "mine") as claimed:
            assert claimed is None
        assert (running / "a.dcm").exists()
    finally:
        os.close(fd)


def test_interrupted_writes_are_never_claimed_and_removed_on_start(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "push")
    token, digests = _stage(inbox, STUDY, 1)
    partial = inbox.study_dir(token) / f"{TEMP_PREFIX}abc"
    partial.write_bytes(b"DICM-half")  # what a crash in the middle of a write leaves
    with inbox.claim(token, "run") as claimed:
        assert sorted(p.name for p in claimed.iterdir()) == [".lock", f"{digests[0]}.dcm"]
    assert partial.exists() and inbox.pending() == []
    assert inbox.remove_temporaries() == 1 and not partial.exists()


@pytest.mark.parametrize("bad", ["../etc", "A" * 32, "0" * 31, "0" * 32 + "/x"])
def test_only_tokens_name_study_folders(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="32 lower-case hex"):
        check_token(bad)
    with pytest.raises(ConfigError):
        Inbox(tmp_path).study_dir(bad)
