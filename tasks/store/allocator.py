"""Keep freed large buffers in the process instead of returning them to the kernel (glibc only).

Reading a clip decodes several multi-megabyte chunks and allocates the clip itself. glibc serves allocations
above its mmap threshold (128 KiB, adapting upwards to at most 32 MiB) with fresh ``mmap`` pages, and every page
then faults on first touch; on this VM those faults, taken one at a time per process, cost as much as the zstd
decoding and keep chunk decoding on two threads from scaling. Raising the mmap and trim thresholds makes freed
buffers reusable from the heap, so the next clip decodes into memory that is already mapped: random 32-frame
clip reads of a 480×640 RGB cine go from ~24 to ~20 ms (``bench/storage.py``).

The cost is resident memory: up to ``TRIM`` bytes of freed heap stay with the process. Call it in processes
that read many clips (DataLoader workers, benchmarks), not in short-lived tools. Elsewhere than glibc
(musl, macOS) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP = 256 * 1024**2
"""Allocations up to this size come from the heap (glibc caps the threshold at 32 MiB on 64-bit unless set)."""
TRIM = 512 * 1024**2
"""Freed heap at the top is returned to the kernel only beyond this size."""


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process (once); True when they were set."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.debug("no glibc mallopt here: allocator left as it is")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM))
