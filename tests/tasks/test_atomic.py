import json
import os
from multiprocessing import Pool
from pathlib import Path

import pytest

from tasks.atomic import TEMP_PREFIX, append_jsonl, atomic_output, atomic_write_bytes, remove_stale_temporaries


def test_atomic_write_publishes_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.bin"
    atomic_write_bytes(target, b"payload")
    assert target.read_bytes() == b"payload"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_output(target) as fh:
        fh.write(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_remove_stale_temporaries(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / f"{TEMP_PREFIX}abc").write_bytes(b"partial")
    (tmp_path / "x" / "kept.dcm").write_bytes(b"done")
    assert remove_stale_temporaries(tmp_path) == 1
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["kept.dcm"]


def _append(args: tuple[str, int]) -> None:
    path, i = args
    for j in range(50):
        append_jsonl(Path(path), {"worker": i, "n": j, "pad": "x" * 200})


def test_append_jsonl_is_line_atomic_across_processes(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    with Pool(4) as pool:
        pool.map(_append, [(str(log), i) for i in range(4)])
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 200
    assert sorted((r["worker"], r["n"]) for r in rows) == [(i, j) for i in range(4) for j in range(50)]
    assert oct(os.stat(log).st_mode & 0o777) == "0o644"


def test_atomic_write_parts_writes_them_in_order_and_leaves_no_temporary(tmp_path: Path) -> None:
    from tasks.atomic import atomic_write_parts

    big = bytearray(os.urandom(3 << 20))  # several MB: writev may take it in more than one call
    target = tmp_path / "x.dcm"
    assert atomic_write_parts(target, [b"\0" * 128, b"DICM", memoryview(big)]) == 132 + len(big)
    assert target.read_bytes() == b"\0" * 128 + b"DICM" + bytes(big)
    with pytest.raises(FileNotFoundError):
        atomic_write_parts(tmp_path / "missing" / "y.dcm", [b"data"])
    assert [p.name for p in tmp_path.iterdir()] == ["x.dcm"]


def test_a_forked_child_names_its_temporaries_differently() -> None:
    """Temporary names come from a fast PRNG (not a system call each); a fork must not repeat the parent's."""
    import os

    from tasks import atomic

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next name
        os.write(write, str(atomic._NAMES.getrandbits(64)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert int(os.read(read, 64)) != atomic._NAMES.getrandbits(64)
