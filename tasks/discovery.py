"""Input discovery shared by ``medflow deid`` and ``medflow ingest``: every entry, so none is dropped silently.

``os.walk`` (symlinks to folders not followed) lists every non-folder entry: regular files, symlinks to
files, and also FIFOs, sockets, dangling symlinks and symlink loops. Those are returned too, so the caller
accounts for them (quarantined as unreadable); :func:`is_regular_file` tells which can be read safely
(opening a FIFO blocks forever).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from tasks.atomic import TEMP_PREFIX


def discover(source: Path, exclude: Path | None = None, *, skip_hidden: bool = False) -> Iterator[Path]:
    """Every non-folder entry below ``source`` (sorted, recursive), except temporaries and ``exclude``.

    With ``skip_hidden``, names starting with "." (files and folders) are left out as well.
    """
    source = Path(source)
    if not source.is_dir():
        yield source
        return
    for root, dirs, files in os.walk(source):
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
