"""Progress of the model checks, counted in clip passes (one clip through the network once).

Domain code reports to a :class:`ProgressSink`; the CLI passes a rich bar, flows pass nothing (``NO_PROGRESS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class ProgressSink(Protocol):
    def start(self, description: str, total: int) -> None: ...

    def advance(self, passes: int) -> None: ...


class _Silent:
    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, passes: int) -> None:
        pass


NO_PROGRESS: ProgressSink = _Silent()


class _RichSink:
    """One rich task: description, bar, passes done / total, elapsed and remaining time."""

    def __init__(self, progress: Any):
        self.progress, self.task = progress, None

    def start(self, description: str, total: int) -> None:
        if self.task is None:
            self.task = self.progress.add_task(description, total=total)
        else:
            self.progress.update(self.task, description=description, total=total, completed=0)

    def advance(self, passes: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, passes)


@contextmanager
def rich_progress(console: Any = None) -> Iterator[ProgressSink]:
    """A rich progress bar on ``console`` (stderr by default) for the duration of the block."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("clip passes"),
               TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        yield _RichSink(progress)
