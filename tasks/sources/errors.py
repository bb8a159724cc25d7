"""Errors of the source step. Messages name the source and the remedy, never a URL path, UID or response body."""

from __future__ import annotations

from tasks.errors import MedflowError, QuarantineReason


class SourceError(MedflowError):
    """A source answered, but not in a way we can use (bad status, malformed response)."""

    reason = QuarantineReason.UNREADABLE
    step = "source"


class SourceUnavailable(SourceError):
    """A network error persisted through every retry (refused, timed out, 5xx, association rejected)."""
