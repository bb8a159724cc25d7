"""Input discovery shared by ``medflow deid`` and ``medflow ingest``: every entry, so none is dropped silently.

:func:`check_source` refuses a SOURCE that does not exist or cannot be read (one clear error, before anything
is written). ``os.walk`` (symlinks to folders not followed) then lists every non-folder entry: regular files,
symlinks to files, and also FIFOs, sockets, dangling symlinks and symlink loops; and a sub-folder that cannot be
listed is returned as an entry of its own. All of those are returned, so the caller accounts for them
(quarantined as unreadable); :func:`is_regular_file` tells which can be read safely (opening a FIFO blocks
forever).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from tasks.atomic import TEMP_PREFIX
from tasks.errors import ConfigError


def check_source(source: Path) -> Path:
    """``source`` if it is a folder that can be listed or a regular file that can be opened, else ConfigError.

    The message names no path (a source folder is often named after a patient).
    """
    source = Path(source)
    try:
        mode = os.stat(source).st_mode
    except FileNotFoundError:
        raise ConfigError("SOURCE does not exist; remedy: pass an existing folder (or file) of DICOM files") from None
    except OSError:
        raise ConfigError(
            "SOURCE cannot be reached (a folder above it cannot be searched, or a symlink loop); remedy: check "
            "its path and the permissions of the folders above it"
        ) from None
    try:
        if stat.S_ISDIR(mode):
            with os.scandir(source) as entries:
                next(entries, None)
        elif stat.S_ISREG(mode):
            os.close(os.open(source, os.O_RDONLY))
        else:
            raise ConfigError("SOURCE is neither a folder nor a regular file; remedy: pass a folder of DICOM files")
    except PermissionError:
        raise ConfigError(
            "SOURCE cannot be read (permission denied); remedy: give the user running medflow read (and, for a "
            "folder, execute) permission"
        ) from None
    except OSError:
        raise ConfigError("SOURCE cannot be read (I/O error); remedy: check the disk or share it is on") from None
    return source


def discover(source: Path, exclude: Path | None = None, *, skip_hidden: bool = False) -> Iterator[Path]:
    """Every non-folder entry below ``source`` (sorted, recursive), except temporaries and ``exclude``; a
    sub-folder that cannot be listed is yielded itself (the caller quarantines it as unreadable).

    With ``skip_hidden``, names starting with "." (files and folders) are left out as well. Raises ConfigError
    (see :func:`check_source`) before yielding anything when ``source`` is missing or unreadable.
    """
    source = check_source(source)
    if not source.is_dir():
        yield source
        return
    unlisted: list[Path] = []
    for root, dirs, files in os.walk(source, onerror=lambda error: unlisted.append(Path(error.filename))):
        yield from _drain(unlisted)
        root_path = Path(root)
        if exclude is not None:
            dirs[:] = [d for d in dirs if (root_path / d).resolve() != exclude]
        if skip_hidden:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        dirs.sort()
        for name in sorted(files):
            if name.startswith(TEMP_PREFIX) or (skip_hidden and name.startswith(".")):
                continue
            yield root_path / name
    yield from _drain(unlisted)


def _drain(paths: list[Path]) -> Iterator[Path]:
    while paths:
        yield paths.pop(0)


def is_regular_file(path: Path) -> bool:
    """Whether ``path`` (symlinks followed) is a regular file; False for FIFOs, dangling links, loops."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def file_size(path: Path) -> int:
    """Size in bytes of a regular file, 0 for anything else (used only to balance batches)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def blocks_on_open(path: Path) -> bool:
    """Whether opening ``path`` for reading may block forever (FIFO, socket, device; symlinks followed)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
