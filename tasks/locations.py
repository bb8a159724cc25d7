"""Places on disk behind opaque names, so that no path or file name reaches Prefect.

Every flow and task parameter that stands for a place (a source folder, a dataset, a labels file, a run
directory, a key file, a weights file) is a *location name*, resolved to a path inside the worker:

- a **configured name**: a source of the sources file (``MEDFLOW_SOURCES_FILE``), or an entry of
  ``MEDFLOW_LOCATIONS`` (JSON object, name → path: ``{"main": "/data/datasets/main"}``), which is what
  static deployments (``deployments/prefect.yaml``) use;
- a **handle** ``<kind>-<16 hex digits>``: random, registered by an entry point for a path the operator gave on
  the command line (``medflow ingest SOURCE``), in ``STATE_DIR/locations.json`` (mode 0600). The handle says
  nothing about the path; the same path keeps its handle.

Research exports are often named after a patient (``/export/DOE_JOHN_123/``), so a path is never a parameter,
a result, a run name, an artifact or an event; error messages name the location, never its path.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import StringConstraints

from tasks.atomic import atomic_write_bytes
from tasks.errors import ConfigError

REGISTRY = "locations.json"
_VERSION = 1
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"

LocationName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
"""A parameter type: lowercase letters, digits and ``-``, so a path or file name cannot pass validation."""


class LocationKind(StrEnum):
    """What a location is; a handle starts with its kind."""

    SOURCE = "source"
    DATASET = "dataset"
    LABELS = "labels"
    RUN = "run"
    KEY = "key"
    WEIGHTS = "weights"
    OUTPUT = "output"


_HANDLE = re.compile(rf"^({'|'.join(k.value for k in LocationKind)})-[0-9a-f]{{16}}$")


def is_handle(name: str) -> bool:
    """True for a registered-handle shape (``dataset-0123456789abcdef``), False for a configured name."""
    return bool(_HANDLE.fullmatch(name))


def check_name(name: object, what: str) -> str:
    """``name`` when it is a location name; else a ConfigError that does not quote it (it may be a path)."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError(
            f"{what} must be a location name (a configured name or a handle from `medflow`), not a path; "
            "paths never become Prefect parameters"
        )
    return name


@contextmanager
def _locked(state_dir: Path):
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / f".{REGISTRY}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return dict(data["locations"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"the location registry in the state directory ({REGISTRY}) is unreadable") from None


def register_location(state_dir: Path, kind: LocationKind | str, path: Path) -> str:
    """The handle of ``path`` (made absolute) as a ``kind``: the existing one, else a new random one."""
    kind = LocationKind(kind)
    resolved = str(Path(path).expanduser().resolve())
    state_dir = Path(state_dir).expanduser()
    registry = state_dir / REGISTRY
    with _locked(state_dir):
        entries = _read(registry)
        for handle, entry in entries.items():
            if entry == {"kind": kind.value, "path": resolved}:
                return handle
        handle = f"{kind.value}-{secrets.token_hex(8)}"
        entries[handle] = {"kind": kind.value, "path": resolved}
        atomic_write_bytes(registry, json.dumps({"version": _VERSION, "locations": entries}, indent=1).encode())
        os.chmod(registry, 0o600)
    return handle


def forget_location(state_dir: Path, handle: str) -> None:
    """Remove a registered handle (one made for a short-lived folder, e.g. a listener's claimed study)."""
    state_dir = Path(state_dir).expanduser()
    registry = state_dir / REGISTRY
    with _locked(state_dir):
        entries = _read(registry)
        if entries.pop(handle, None) is not None:
            atomic_write_bytes(registry, json.dumps({"version": _VERSION, "locations": entries}, indent=1).encode())
            os.chmod(registry, 0o600)


@dataclass(frozen=True)
class Locations:
    """Resolves location names with the worker's settings (state directory, sources file, ``MEDFLOW_LOCATIONS``)."""

    state_dir: Path
    configured: dict[str, Path]
    sources_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Any | None = None) -> Locations:
        from tasks.config import load_settings

        settings = settings or load_settings()
        return cls(Path(settings.state_dir).expanduser(), dict(settings.locations), settings.sources_file)

    def register(self, kind: LocationKind | str, path: Path) -> str:
        """See :func:`register_location`."""
        return register_location(self.state_dir, kind, path)

    def forget(self, handle: str) -> None:
        """See :func:`forget_location`."""
        forget_location(self.state_dir, handle)

    def path(self, kind: LocationKind | str, name: str, *, must_exist: bool = True) -> Path:
        """The path behind ``name``; a ConfigError naming the location (never the path) when it is unknown, of
        another kind, or (``must_exist``) missing on this machine."""
        kind = LocationKind(kind)
        check_name(name, f"the {kind.value}")
        if is_handle(name):
            entry = _read(self.state_dir / REGISTRY).get(name)
            if entry is None:
                raise ConfigError(
                    f"{kind.value} {name} is not registered in this worker's state directory; "
                    "run the command again here, or share MEDFLOW_STATE_DIR with the workers"
                )
            if entry["kind"] != kind.value:
                raise ConfigError(f"{name} is a {entry['kind']}, not a {kind.value}")
            path = Path(entry["path"])
        elif kind is LocationKind.SOURCE:
            path = self.source_folder(name)
        elif name in self.configured:
            path = Path(self.configured[name]).expanduser()
        else:
            raise ConfigError(f"{kind.value} {name!r} is not configured; add it to MEDFLOW_LOCATIONS")
        if must_exist and not path.exists():
            raise ConfigError(f"{kind.value} {name}: nothing exists at its path on this machine; fix its location")
        return path

    def source(self, name: str) -> Any:
        """The :class:`~tasks.sources.SourceConfig` of ``name``: its sources-file entry, or a folder source for a
        handle registered by ``medflow ingest SOURCE``."""
        from tasks.sources import SourceConfig, SourceKind, load_sources

        check_name(name, "the source")
        if is_handle(name):
            return SourceConfig(name=name, kind=SourceKind.FOLDER, path=self.path(LocationKind.SOURCE, name))
        if self.sources_file is None:
            raise ConfigError(f"source {name!r}: no sources file; set MEDFLOW_SOURCES_FILE on the worker")
        for config in load_sources(self.sources_file):
            if config.name == name:
                return config
        raise ConfigError(f"source {name!r} is not in the sources file; add it or fix the deployment")

    def source_folder(self, name: str) -> Path:
        """The folder the ingest of source ``name`` reads: a folder source's own, else its staging folder."""
        from tasks.sources import SourceKind, staging_dir

        config = self.source(name)
        if config.kind is SourceKind.FOLDER:
            return Path(str(config.path)).expanduser()
        return staging_dir(self.state_dir, name)


def existing_folder(locations: Locations, kind: LocationKind, name: str) -> Path:
    """The folder behind ``name``; a ConfigError when it does not exist or is not a folder (run fails, says why)."""
    path = locations.path(kind, name, must_exist=False)
    if not path.is_dir():
        raise ConfigError(
            f"{kind.value} {name}: its folder does not exist or is not a folder on this machine; "
            "fix the sources file or the path given to `medflow`"
        )
    return path
