"""The de-identification key: refused when others can read its file, never shown, logged or written out."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.deid.keys import DeidKey, load_key
from tasks.errors import ConfigError
from tests.reliability.corpus import (
    TEST_KEY,
    add_key_patterns,
    copy_real,
    planted_patterns,
    raw_search,
    text_search,
    write_key,
)

KEY_BYTES = bytes.fromhex(TEST_KEY)


def _key_patterns():
    return add_key_patterns(planted_patterns({}))


def test_key_search_detects_a_leak(tmp_path: Path) -> None:
    """Control: the search below does find the key, as hex (any case) and as raw bytes."""
    (tmp_path / "a.bin").write_bytes(b"\x00pickle" + KEY_BYTES + b"\x00")
    (tmp_path / "b.log").write_text(f"key={TEST_KEY.upper()}")
    (tmp_path / "c.txt").write_text("nothing here")
    found = dict(raw_search([tmp_path], _key_patterns()))
    assert set(found) == {str(tmp_path / "a.bin"), str(tmp_path / "b.log")}


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o640, 0o660, 0o666])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = write_key(tmp_path / "deid.key")
    os.chmod(key_file, mode)
    with pytest.raises(ConfigError) as info:
        load_key(key_file)
    message = str(info.value)
    assert "chmod 600" in message
    assert TEST_KEY not in message and f"{mode:o}" in message


def test_private_key_file_is_accepted(tmp_path: Path) -> None:
    key_file = write_key(tmp_path / "deid.key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_key(key_file) == DeidKey(KEY_BYTES)


def test_cli_refuses_world_readable_key_without_showing_it(tmp_path: Path) -> None:
    source = tmp_path / "source"
    copy_real(source, ("CT_small.dcm",))
    key_file = write_key(tmp_path / "deid.key")
    os.chmod(key_file, 0o644)
    result = CliRunner().invoke(app, ["deid", str(source), str(tmp_path / "out"), "--key-file", str(key_file)])
    assert result.exit_code == 2
    assert "chmod" in result.output
    assert not text_search(result.output, _key_patterns())
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.dcm"))


def test_key_never_in_repr_logs_or_outputs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tasks.deid.context import DeidContext
    from tasks.deid.folder import deidentify_folder

    key = DeidKey(KEY_BYTES)
    ctx = DeidContext.create(key, clean_pixels="off")
    patterns = _key_patterns()
    for shown in (repr(key), str(key), repr(ctx), str(ctx), repr(ctx.pseudonymizer)):
        assert not text_search(shown, patterns)

    source, output = tmp_path / "source", tmp_path / "output"
    copy_real(source, ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm"))
    (source / "broken.dcm").write_bytes(b"\x00" * 10)
    with caplog.at_level(logging.DEBUG):
        summary = deidentify_folder(source, output, ctx, workers=0, progress=False)  # logs in this process
    assert summary.written == 3 and summary.quarantined == 1
    assert not text_search(caplog.text, patterns)
    assert not raw_search([output], patterns)
