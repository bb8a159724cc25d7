"""Key loading refuses missing, empty, short and world-readable keys; the key never leaks."""

from __future__ import annotations

import os
import stat

import pytest

from tasks.deid.keys import DeidKey, load_key, write_new_key
from tasks.errors import ConfigError


def test_keygen_writes_0600_and_loads(tmp_path):
    path = tmp_path / "k" / "deid.key"
    write_new_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_key(path)
    assert len(key.secret) == 32
    assert path.read_text().strip() not in repr(key) + str(key)
    with pytest.raises(ConfigError):
        write_new_key(path)  # never overwrites


def test_file_wins_over_environment(tmp_path):
    path = tmp_path / "key"
    write_new_key(path)
    assert load_key(path, env_value="x" * 40) == load_key(path)
    assert load_key(None, env_value="x" * 40).secret == b"x" * 40


@pytest.mark.parametrize(
    ("content", "mode", "fragment"),
    [(None, 0o600, "not found"), ("", 0o600, "empty"), ("short", 0o600, "too short"), ("y" * 40, 0o644, "chmod 600")],
)
def test_bad_key_files_are_config_errors(tmp_path, content, mode, fragment):
    path = tmp_path / "key"
    if content is not None:
        path.write_text(content)
        os.chmod(path, mode)
    with pytest.raises(ConfigError, match=fragment) as info:
        load_key(path)
    assert "y" * 40 not in str(info.value)


def test_missing_and_short_env_keys():
    with pytest.raises(ConfigError, match="keygen"):
        load_key(None, None)
    with pytest.raises(ConfigError, match="too short"):
        load_key(None, "tooshort")
    with pytest.raises(ConfigError):
        DeidKey(b"")
