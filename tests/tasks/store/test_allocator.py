"""Freed clip-sized buffers are reused without new page faults once the allocator is tuned."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from tasks.store.allocator import keep_freed_memory
    assert keep_freed_memory()
SIZE = 48 * 640 * 480 * 3  # a 48-frame 480x640 RGB clip: 44 MB, above glibc's adaptive mmap threshold cap (32 MiB)
for _ in range(3):  # warm: the first buffers fault in either case
    a = np.ones(SIZE, np.uint8); del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = np.ones(SIZE, np.uint8); del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_tuned_process_reuses_freed_buffers() -> None:
    default, tuned = _faults("default"), _faults("tuned")
    assert default > 20 * 100  # every buffer is a fresh mapping that faults in (huge) page by page
    assert tuned < default / 20
