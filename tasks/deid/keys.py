"""The secret de-identification key: loaded once at the entry point, never logged or written out."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Any

from tasks.errors import ConfigError

MIN_KEY_BYTES = 16
NEW_KEY_BYTES = 32
KEY_ENV = "MEDFLOW_DEID_KEY"
REMEDY = "create one with `medflow keygen PATH` and pass --key-file PATH (or set MEDFLOW_KEY_FILE or MEDFLOW_DEID_KEY)"


class DeidKey:
    """Key bytes for HMAC pseudonyms. ``repr``/``str`` never show the key."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes):
        if len(secret) < MIN_KEY_BYTES:
            raise ConfigError(f"de-identification key is too short (need >= {MIN_KEY_BYTES} bytes); {REMEDY}")
        self._secret = bytes(secret)

    @property
    def secret(self) -> bytes:
        return self._secret

    def __repr__(self) -> str:
        return "DeidKey(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeidKey) and secrets.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(DeidKey)

    def __reduce__(self):  # picklable for worker processes
        return (DeidKey, (self._secret,))


def _decode(text: str) -> bytes:
    """Hex keys (as written by :func:`write_new_key`) become their bytes; any other text its UTF-8."""
    text = text.strip()
    try:
        if len(text) % 2 == 0 and len(text) >= 2 * MIN_KEY_BYTES:
            return bytes.fromhex(text)
    except ValueError:
        pass
    return text.encode()


def load_key(key_file: Path | None = None, env_value: str | None = None, *, settings: Any | None = None) -> DeidKey:
    """The de-identification key: the one function every entry point, flow and task loads it with.

    ``key_file`` wins, then ``env_value``; with neither, the settings (``settings``, else read from the environment
    now): ``MEDFLOW_KEY_FILE``, then ``MEDFLOW_DEID_KEY``. Refuses a missing, empty or short key and a key file
    readable by group or others.
    """
    if key_file is None and env_value is None:
        if settings is None:
            from tasks.config import load_settings

            settings = load_settings()
        key_file = settings.key_file
        env_value = settings.deid_key.get_secret_value() if settings.deid_key else None
    if key_file is not None:
        return _read_key_file(Path(key_file))
    if env_value is not None and env_value.strip():
        return DeidKey(_decode(env_value))
    raise ConfigError(f"no de-identification key given; {REMEDY}")


def key_configured(settings: Any) -> bool:
    """True when ``settings`` name a key (file or ``MEDFLOW_DEID_KEY``), so :func:`load_key` has one to load."""
    return settings.key_file is not None or bool(settings.deid_key and settings.deid_key.get_secret_value().strip())


def _read_key_file(path: Path) -> DeidKey:
    if not path.is_file():
        raise ConfigError(f"key file not found; {REMEDY}")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"key file is readable by group or others (mode {mode:o}); run `chmod 600` on it")
    text = path.read_text(errors="strict").strip()
    if not text:
        raise ConfigError(f"key file is empty; {REMEDY}")
    return DeidKey(_decode(text))


def write_new_key(path: Path) -> None:
    """Write a fresh random key (hex) to ``path`` with mode 0600; refuses to overwrite."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError("key file already exists; choose a new path (an existing key is never overwritten)") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(NEW_KEY_BYTES) + "\n")
    os.chmod(path, 0o600)
