"""Swap two directory entries in one step, so a replaced Zarr node is never missing or half-written."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errnos
import os
from pathlib import Path

RENAME_EXCHANGE = 2  # <linux/fs.h>
AT_FDCWD = -100


def exchange(a: Path, b: Path) -> None:
    """Swap two directory entries atomically (Linux ``renameat2(RENAME_EXCHANGE)``). Where the call is missing
    (older C libraries, other systems) ``b`` is moved aside and ``a`` into its place: two renames, so a crash
    between them leaves ``b``'s old content under the staging folder, which the next run clears."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
            return
        errno = ctypes.get_errno()
        if errno not in (errnos.ENOSYS, errnos.EINVAL, errnos.EOPNOTSUPP):  # anything but "no exchange here"
            raise OSError(errno, os.strerror(errno), str(b))
    aside = a.with_name(a.name + "-old")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)
