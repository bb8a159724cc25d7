"""The few exceptions medflow raises, each carrying a machine-readable quarantine reason.

Messages name tag numbers, steps and remedies, never values: an exception text can end up in a
log, a Prefect state or a quarantine file, so it must be free of PHI by construction.
"""

from __future__ import annotations

from enum import StrEnum


class QuarantineReason(StrEnum):
    """Why an input was not released. Stable strings: they are written to ``quarantine.jsonl``."""

    NOT_DICOM = "not-dicom"
    UNREADABLE = "unreadable"
    TRUNCATED = "truncated"
    CORRUPT_HEADER = "corrupt-header"
    DICOMDIR = "dicomdir"
    UNSUPPORTED = "unsupported"
    TOO_LARGE = "too-large"
    PIXELS_UNDECODABLE = "pixels-undecodable"
    PIXELS_INCONSISTENT = "pixels-inconsistent"
    TEXT_PERSISTS = "burned-in-text-persists"
    DEID_FAILED = "deid-failed"
    ENCODE_FAILED = "encode-failed"
    WRITE_FAILED = "write-failed"
    NORMALISE_FAILED = "normalise-failed"
    TIMEOUT = "timeout"
    WORKER_CRASHED = "worker-crashed"
    QC_FAILED = "qc-failed"


class MedflowError(Exception):
    """Base class. ``reason`` says why, ``step`` says where; the message never quotes a value."""

    reason: QuarantineReason = QuarantineReason.DEID_FAILED
    step: str = "medflow"

    def __init__(self, message: str, *, reason: QuarantineReason | None = None, step: str | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        if step is not None:
            self.step = step


class ConfigError(MedflowError):
    """A missing or unsafe setting (key file, path, option). The message states the remedy."""

    step = "config"


class InputError(MedflowError):
    """The input cannot be read as a DICOM object we can process."""

    reason = QuarantineReason.NOT_DICOM
    step = "read"


class DeidError(MedflowError):
    """Header de-identification could not be applied completely."""

    reason = QuarantineReason.DEID_FAILED
    step = "deid"


class PixelError(MedflowError):
    """Pixel data could not be decoded, cleaned or re-encoded; the file must not be released."""

    reason = QuarantineReason.PIXELS_UNDECODABLE
    step = "pixels"


class StorageError(MedflowError):
    """Writing to the dataset or output folder failed."""

    reason = QuarantineReason.WRITE_FAILED
    step = "store"
