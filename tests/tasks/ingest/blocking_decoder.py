"""A pydicom pixel-data decoder plugin (the documented ``Decoder.add_plugin`` interface) that never returns.

Test-only: registered for RLE Lossless by :mod:`tests.tasks.ingest.hanging` in the processes it runs, it makes a
real RLE file's decode block forever, as a decoder stuck on a pathological input does.
"""

from __future__ import annotations

import threading

from pydicom.uid import RLELossless

DECODER_DEPENDENCIES = {RLELossless: ()}


def is_available(uid: str) -> bool:
    return uid == RLELossless


def decode_frame(src: bytes, runner: object) -> bytearray:
    threading.Event().wait()  # blocks in the kernel until the process is killed
    raise AssertionError("unreachable")
