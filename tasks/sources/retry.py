"""Retries with exponential backoff on network errors, shared by the DICOMweb and DIMSE sources."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import tenacity

from tasks.sources.config import RetryPolicy
from tasks.sources.errors import SourceUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")


class TransientError(Exception):
    """Raised inside a network call to ask for a retry. Carries a fixed description, never response text."""


def with_retries(
    call: Callable[[], T], policy: RetryPolicy, *, source: str, what: str, transient: tuple[type[BaseException], ...]
) -> T:
    """Run ``call``; retry on ``transient`` exceptions with exponential backoff; then raise SourceUnavailable.

    The final error names the source, the operation and the exception type only: third-party messages can
    quote URLs that contain UIDs, so they are dropped (``from None``).
    """

    def _log(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning(
            "source %s: %s failed (%s), attempt %d of %d; retrying in %.1f s",
            source,
            what,
            type(exc).__name__,
            state.attempt_number,
            policy.attempts,
            state.next_action.sleep if state.next_action else 0.0,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=tenacity.wait_exponential(multiplier=policy.initial_wait_s, max=policy.max_wait_s),
        retry=tenacity.retry_if_exception_type((TransientError, *transient)),
        before_sleep=_log,
        reraise=True,
    )
    try:
        return retrying(call)
    except (TransientError, *transient) as exc:
        name = type(exc).__name__
        raise SourceUnavailable(
            f"source {source}: {what} failed after {policy.attempts} attempts ({name}); "
            "check that the service is running and reachable, then run the ingest again"
        ) from None
