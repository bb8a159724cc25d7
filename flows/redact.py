"""What a failing flow or task tells Prefect: a state message and a logged traceback that carry no path and no value.

Prefect stores the text of the exception that ends a run (state message, event payload, the traceback in the run's
log). Third-party exception text often quotes a file name or a header value, so inside :func:`redacted_errors`:

- a :class:`~tasks.errors.MedflowError` (whose messages name attributes and remedies by design) passes with any
  absolute path in its text replaced by ``<path>``;
- any other exception becomes a :class:`RunFailed` naming the step and the exception type only, raised ``from
  None`` (no chained text); the full traceback goes to ``STATE_DIR/errors/<error-id>.txt`` (mode 0600) on the
  machine that ran the step, and the message names that error id.
"""

from __future__ import annotations

import os
import re
import secrets
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.errors import MedflowError

ERRORS_DIR = "errors"
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])(?:file://)?/[^\s'\"`,;()<>\[\]{}]+")


class RunFailed(MedflowError):
    """A step failed with an exception whose text is kept off Prefect (see the error file it names)."""


def scrub(text: str) -> str:
    """``text`` with every absolute path (and ``file://`` URI) replaced by ``<path>``."""
    return _ABSOLUTE_PATH.sub("<path>", text)


def _write_error_file(error: BaseException) -> str:
    """Save the full traceback under the state directory; return the error id (the file's stem)."""
    from tasks.config import load_settings

    error_id = secrets.token_hex(6)
    try:
        folder = Path(load_settings().state_dir).expanduser() / ERRORS_DIR
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(folder / f"{error_id}.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("".join(traceback.format_exception(error)))
    except OSError:
        return f"{error_id} (not saved: state directory not writable)"
    return error_id


@contextmanager
def redacted_errors(step: str) -> Iterator[None]:
    """Run the block; let an exception out only in the PHI-free forms above."""
    try:
        yield
    except MedflowError as error:  # a fresh copy, raised from None: a chained cause would print its own text
        cleaned = scrub(str(error))
        try:
            copy = type(error)(cleaned, reason=error.reason, step=error.step)
        except TypeError:  # a subclass with its own signature
            copy = RunFailed(cleaned, reason=error.reason, step=error.step)
        raise copy from None
    except Exception as error:
        error_id = _write_error_file(error)
        raise RunFailed(
            f"{step} failed with {type(error).__name__}{_where(error)}; its message is withheld from Prefect (it may "
            f"quote a file name or a value): see error {error_id} under the worker's state directory ({ERRORS_DIR}/)",
            step=step,
        ) from None


def _where(error: BaseException) -> str:
    """`` at <module file>:<line>`` of the innermost medflow frame that raised it (code, never data), or ''."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).is_relative_to(_PROJECT)]
    if not frames:
        return ""
    return f" at {Path(frames[-1].filename).relative_to(_PROJECT)}:{frames[-1].lineno}"


_PROJECT = Path(__file__).resolve().parents[1]
