"""What a listener does with one received instance, whatever the transport (C-STORE or STOW-RS).

Read the few header fields that place it (Study and SOP Instance UID, modality), apply the routing rule
(only the configured modalities) and the staged-bytes limit, write it durably into the inbox under keyed
names, and note it for the study-complete trigger. An instance whose header cannot be read is still kept
(grouped under the token of an empty Study UID) so the ingest quarantines it with a reason: nothing received
is dropped without a trace. Only counts and modality codes are logged.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from pydicom import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset, read_partial
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from tasks.sources.inbox import Inbox, study_token
from tasks.sources.seen import instance_digest
from tasks.sources.studies import StudyTracker

logger = logging.getLogger(__name__)

_MODALITY = re.compile(r"^[A-Z0-9_]{1,16}$")
_PLACING = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality")
_PLACING_TAGS: list[BaseTag | int] = [Tag(k) for k in _PLACING]
_LAST_PLACING_TAG = max(_PLACING_TAGS)  # (0020,000D) Study Instance UID: nothing after it is needed
_READ_ERRORS = (InvalidDicomError, OSError, ValueError, TypeError, EOFError, KeyError, AttributeError, zlib.error)
UNKNOWN = "unknown"
Buffer = bytes | bytearray | memoryview


class Outcome(StrEnum):
    """The fate of one received instance (maps to a DIMSE status and a STOW-RS failure reason)."""

    STORED = "stored"
    NOT_ROUTED = "not-routed"  # modality outside the listener's routing rule: acknowledged, not staged
    FULL = "staging-full"  # refused: the staged-bytes limit is reached
    FAILED = "write-failed"  # refused: the instance could not be made durable
    NO_INSTANCE_UID = "no-instance-uid"  # refused: nothing identifies the instance


@dataclass(frozen=True)
class Placement:
    """Where an instance goes: keyed study token and instance digest, its modality code; UIDs for the reply."""

    token: str
    digest: str
    modality: str
    sop_class_uid: str
    sop_instance_uid: str


def modality_code(value: object) -> str:
    """A DICOM modality defined term, or ``unknown`` for anything else (never a free-text value)."""
    text = str(value or "").strip().upper()
    return text if _MODALITY.match(text) else UNKNOWN


class Receiver:
    """Places, routes, limits and stores received instances for one listener; thread-safe."""

    def __init__(
        self,
        inbox: Inbox,
        key: bytes,
        tracker: StudyTracker,
        *,
        modalities: frozenset[str] = frozenset(),
        max_staged_bytes: int,
    ) -> None:
        self.inbox = inbox
        self.tracker = tracker
        self.modalities = modalities
        self.max_staged_bytes = max_staged_bytes
        self._key = key
        self._lock = threading.Lock()
        self._staged = inbox.staged_bytes()
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)

    def __repr__(self) -> str:
        return f"Receiver({self.inbox!r}, {self.counts[Outcome.STORED]} stored)"

    def refresh_staged_bytes(self) -> int:
        """Re-count what is staged (ingest runs remove what they finished)."""
        staged = self.inbox.staged_bytes()
        with self._lock:
            self._staged = staged
        return staged

    def token_of(self, study_instance_uid: str) -> str:
        """The keyed token of a Study Instance UID under this listener's key."""
        return study_token(self._key, study_instance_uid)

    def place(
        self,
        ds: Dataset | Mapping[str, str] | None,
        sop_instance_uid: str | None = None,
        sop_class_uid: str | None = None,
    ) -> Placement | None:
        """Token, digest and modality of an instance (``ds``: its header, or the placing fields as found by
        :func:`tasks.sources.header_scan.scan_placing_fields`); None when no SOP Instance UID is known.

        ``sop_instance_uid`` and ``sop_class_uid`` (a C-STORE request's Affected SOP Instance/Class UID) win over
        the header's."""
        fields = {k: _text(ds, k) for k in _PLACING} if ds is not None else dict.fromkeys(_PLACING, "")
        uid = (sop_instance_uid or fields["SOPInstanceUID"]).strip()
        if not uid:
            return None
        return Placement(
            token=study_token(self._key, fields["StudyInstanceUID"]),
            digest=instance_digest(self._key, uid),
            modality=modality_code(fields["Modality"]),
            sop_class_uid=(sop_class_uid or fields["SOPClassUID"]).strip(),
            sop_instance_uid=uid,
        )

    def store_bytes(self, data: Buffer | Sequence[Buffer], placement: Placement | None) -> Outcome:
        """Store one Part-10 instance held in memory (C-STORE), whole or as consecutive parts (never joined)."""
        parts = (data,) if isinstance(data, Buffer) else tuple(data)
        size = sum(memoryview(part).nbytes for part in parts)
        return self._store(placement, size, lambda p: self.inbox.write(p.token, p.digest, *parts))

    def store_file(self, temporary: Path, placement: Placement | None) -> Outcome:
        """Store one Part-10 instance streamed to a fsynced temporary file in the inbox (STOW-RS)."""
        outcome = self._store(
            placement, temporary.stat().st_size, lambda p: self.inbox.adopt(temporary, p.token, p.digest)
        )
        temporary.unlink(missing_ok=True)  # refused or not routed: the temporary goes
        return outcome

    def _store(self, placement: Placement | None, size: int, write) -> Outcome:
        if placement is None:
            return self._count(Outcome.NO_INSTANCE_UID)
        if self.modalities and placement.modality not in self.modalities:
            return self._count(Outcome.NOT_ROUTED)
        with self._lock:
            if self._staged + size > self.max_staged_bytes:
                full = True
            else:
                full = False
                self._staged += size  # reserved before the write, so parallel associations cannot overshoot
        if full:
            return self._count(Outcome.FULL)
        try:
            write(placement)
        except OSError as exc:  # disk full, permissions: refuse (the sender keeps the instance and retries)
            with self._lock:
                self._staged -= size
            logger.error("listener could not stage an instance (%s); refused", type(exc).__name__)
            return self._count(Outcome.FAILED)
        self.tracker.record(placement.token, placement.modality, size)
        return self._count(Outcome.STORED)

    def _count(self, outcome: Outcome) -> Outcome:
        with self._lock:
            self.counts[outcome] += 1
        return outcome


def _past_placing(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag > _LAST_PLACING_TAG


def read_placing_fields(source: bytes | Path) -> Dataset | None:
    """The placing fields of a Part-10 instance, read only up to the Study Instance UID (the header's
    elements are in tag order, the pixel data far behind); None when it is not readable DICOM."""
    try:
        if isinstance(source, Buffer):
            return read_partial(io.BytesIO(source), stop_when=_past_placing, specific_tags=_PLACING_TAGS)
        with open(source, "rb") as fh:
            return read_partial(fh, stop_when=_past_placing, specific_tags=_PLACING_TAGS)
    except _READ_ERRORS:
        return None


def read_dataset_fields(stream: BinaryIO, transfer_syntax: str) -> Dataset | None:
    """The placing fields of an encoded dataset without file meta (a C-STORE request's Data Set, in
    ``transfer_syntax``), read up to the Study Instance UID; the stream is left at its start."""
    try:
        syntax = UID(transfer_syntax)
        stream.seek(0)
        source = stream
        if syntax.is_deflated:  # the whole dataset is deflated: inflate it first (as pydicom does)
            source = io.BytesIO(zlib.decompress(stream.read(), -zlib.MAX_WBITS))
        return read_dataset(
            source, syntax.is_implicit_VR, syntax.is_little_endian, stop_when=_past_placing, specific_tags=_PLACING_TAGS
        )
    except _READ_ERRORS:
        return None
    finally:
        stream.seek(0)


def _text(ds: Dataset | Mapping[str, str], keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except (ValueError, TypeError, KeyError, AttributeError):  # a malformed element
        return ""
    return str(value or "")
