"""The inbox's write-ahead journal: what was appended and not checkpointed is read back after a crash, in order;
torn, old and checkpointed records never are; the ring reuses only space behind the checkpoint."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tasks.errors import ConfigError
from tasks.sources.inbox import JOURNAL_NAME, SUFFIX, Inbox
from tasks.sources.journal import BLOCK, HEADER_BYTES, MAX_PAYLOAD, SUPER_SLOTS, Journal

TOKEN = "0" * 32


def digest(i: int) -> str:
    return f"{i:032x}"


def crashed(journal: Journal) -> Journal:
    """What the next start sees: the file as the killed process left it."""
    journal.close()
    return Journal(journal.path, journal.capacity)


def fresh(path: Path, capacity: int = 64 * BLOCK) -> Journal:
    journal = Journal(path, capacity)
    assert journal.recover() == []
    journal.reset()
    return journal


def test_appended_records_are_read_back_in_order_with_their_payloads(tmp_path: Path) -> None:
    journal = fresh(tmp_path / "j")
    payloads = [os.urandom(n) for n in (1, 5000, 3 * BLOCK)]
    for i, data in enumerate(payloads):
        journal.append(TOKEN, digest(i), [data[:1], memoryview(data)[1:]])  # parts are joined in order
    again = crashed(journal)
    records = again.recover()
    assert [r.digest for r in records] == [digest(i) for i in range(3)]
    assert [r.token for r in records] == [TOKEN] * 3
    assert [again.payload(r) for r in records] == payloads


def test_checkpointed_torn_and_reset_records_are_not_read_back(tmp_path: Path) -> None:
    journal = fresh(tmp_path / "j")
    records = [journal.append(TOKEN, digest(i), [os.urandom(100)]) for i in range(4)]
    journal.checkpoint(records[0])
    last = records[-1]
    with open(journal.path, "r+b") as fh:  # the last one torn: a flipped byte in its payload
        fh.seek(last.offset + HEADER_BYTES + 50)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    again = crashed(journal)
    assert [r.seq for r in again.recover()] == [2, 3]
    again.reset()
    assert crashed(again).recover() == []  # a new generation: nothing of the old one comes back


def test_the_ring_wraps_reuses_only_checkpointed_space_and_refuses_when_full(tmp_path: Path) -> None:
    journal = fresh(tmp_path / "j", capacity=9 * BLOCK)  # 8 blocks of ring: 4 records of 2 blocks
    data = os.urandom(BLOCK)  # header + payload: 2 blocks
    first = [journal.append(TOKEN, digest(i), [data]) for i in range(4)]
    assert journal.append(TOKEN, digest(9), [data]) is None  # full of records not yet staged
    journal.checkpoint(first[1])
    wrapped = [journal.append(TOKEN, digest(4 + i), [data]) for i in range(2)]
    assert [r.offset for r in wrapped] == [BLOCK, 3 * BLOCK]  # at the ring's start, over checkpointed records
    assert journal.append(TOKEN, digest(9), [data]) is None
    journal.checkpoint(first[3])
    records = crashed(journal).recover()
    assert [r.digest for r in records] == [digest(4), digest(5)]


def test_too_large_a_payload_is_not_journaled(tmp_path: Path) -> None:
    journal = fresh(tmp_path / "j")
    assert journal.append(TOKEN, digest(0), [bytes(MAX_PAYLOAD + 1)]) is None


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    journal = fresh(tmp_path / "j")
    with pytest.raises(ConfigError, match="another running listener"):
        Journal(journal.path)
    journal.close()
    Journal(journal.path).close()  # free again once the first is gone


def staged(inbox: Inbox) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in inbox.root.rglob(f"*{SUFFIX}")}


def test_an_inbox_with_a_journal_stages_what_it_acknowledged(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox")
    assert inbox.open_journal(capacity=64 * BLOCK) == 0
    data = [os.urandom(2000 + i) for i in range(20)]
    for i, d in enumerate(data):
        assert inbox.write(TOKEN, digest(i), d[:10], d[10:]) == len(d)
    big = os.urandom(MAX_PAYLOAD + 1)  # written straight to its file
    inbox.write(TOKEN, digest(99), big)
    assert inbox.flush(timeout_s=10)
    assert staged(inbox) == {f"{digest(i)}{SUFFIX}": d for i, d in enumerate(data)} | {f"{digest(99)}{SUFFIX}": big}
    assert inbox.staged_bytes() == sum(map(len, data)) + len(big)  # the journal itself is not staged data
    inbox.close_journal()
    assert not [p for p in inbox.root.rglob("*") if p.is_file() and p.name.startswith(".medflow-tmp")]


def test_what_a_crash_left_only_in_the_journal_is_staged_on_the_next_open(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    journal = fresh(root / JOURNAL_NAME)
    data = {digest(i): os.urandom(3000) for i in range(5)}
    for name, d in data.items():
        journal.append(TOKEN, name, [d])
    journal.close()  # killed before its stager wrote a file
    inbox = Inbox(root)
    assert staged(inbox) == {}
    assert inbox.open_journal() == 5
    assert staged(inbox) == {f"{name}{SUFFIX}": d for name, d in data.items()}  # before it accepts anything
    inbox.close_journal()
    assert Inbox(root).open_journal() == 0  # staged once: the next start finds nothing left


def _until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_stager_waits_for_a_pause_a_half_full_journal_or_a_flush(tmp_path: Path) -> None:
    """Staged files are written off the sender's path: not while it streams, unless the journal fills."""
    paused = Inbox(tmp_path / "paused")
    paused.open_journal(capacity=65 * BLOCK)
    try:
        paused.write(TOKEN, digest(0), os.urandom(3000))
        assert _until(lambda: len(staged(paused)) == 1)  # the sender paused: staged without a flush
    finally:
        paused.close_journal()

    inbox = Inbox(tmp_path / "inbox")
    inbox.open_journal(capacity=65 * BLOCK, stage_idle_s=3600)  # 64 blocks of ring; a sender that never pauses
    try:
        for i in range(19):  # a 3000-byte record takes one block
            inbox.write(TOKEN, digest(i), os.urandom(3000))
        time.sleep(0.3)
        assert staged(inbox) == {}  # 19 of 64 blocks: left journaled
        assert inbox.flush(timeout_s=10) and len(staged(inbox)) == 19
        for i in range(19, 60):
            inbox.write(TOKEN, digest(i), os.urandom(3000))
        journal = inbox._journal
        assert _until(lambda: journal.used_bytes * 2 < journal.capacity)  # half full: staged until it is not
        assert len(staged(inbox)) >= 19 + 32 - 1
        assert inbox.staged_bytes() == len(staged(inbox)) * 3000 + journal.used_bytes  # the journal's count too
    finally:
        inbox.close_journal()
    assert len(staged(inbox)) == 60  # closing stages the rest


def test_a_torn_superblock_falls_back_to_the_copy_before_it(tmp_path: Path) -> None:
    journal = fresh(tmp_path / "j")
    records = [journal.append(TOKEN, digest(i), [os.urandom(100)]) for i in range(4)]
    journal.checkpoint(records[0])
    journal.checkpoint(records[2])  # the newer copy of the two
    newer = SUPER_SLOTS[journal._epoch % 2]
    with open(journal.path, "r+b") as fh:  # torn by a crash while it was written
        fh.seek(newer + 8)
        fh.write(b"\xff" * 8)
    again = crashed(journal)
    assert [r.seq for r in again.recover()] == [2, 3, 4]  # from the older checkpoint: staging twice is harmless


def test_a_listener_that_cannot_start_gives_its_journal_back(tmp_path: Path) -> None:
    import socket

    from tasks.sources import SourceConfig, SourceKind
    from tasks.sources.listener import Listener

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = SourceConfig(name="push", kind=SourceKind.LISTENER, port=taken.getsockname()[1], journal_mb=8)
        with pytest.raises(OSError):
            Listener(config, b"k" * 32, tmp_path, lambda study: None).start()
    config = config.model_copy(update={"port": 0})
    Listener(config, b"k" * 32, tmp_path, lambda study: None).start().stop()  # the journal is free again


def test_a_file_staged_directly_lands_after_a_journaled_copy_of_the_same_instance(tmp_path: Path) -> None:
    """The sender resends an instance: the newer copy wins, whichever path each copy took."""
    inbox = Inbox(tmp_path / "inbox")
    inbox.open_journal(capacity=65 * BLOCK, stage_idle_s=3600)  # the journaled copy would wait
    older, newer = os.urandom(3000), os.urandom(MAX_PAYLOAD + 1)  # the newer one too large for the journal
    inbox.write(TOKEN, digest(1), older)
    inbox.write(TOKEN, digest(2), os.urandom(MAX_PAYLOAD + 1))  # another instance: nothing journaled waited for
    assert inbox._journal.holds(digest(1))
    inbox.write(TOKEN, digest(1), newer)
    assert not inbox._journal.holds(digest(1))
    inbox.close_journal()
    assert staged(inbox)[f"{digest(1)}{SUFFIX}"] == newer
