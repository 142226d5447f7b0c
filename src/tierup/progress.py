"""Progress bars for the `tierup` command: on a terminal only, never in a log file.

Services report progress through plain callbacks `(done, total)`; this module is the one
place that turns them into bars (rich), and only when standard error is a terminal. Piped or
redirected output gets no bar, so logs keep only the command's own lines.
"""

from __future__ import annotations

import sys
from typing import Callable, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

Callback = Callable[[int, int], None]


def _quiet(done: int, total: int) -> None:
    pass


class Bars:
    """The bars of one command: `with Bars() as bars: service(..., progress=bars.bar("label"))`."""

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = sys.stderr if stream is None else stream
        self.shown = _is_terminal(stream)
        self._progress = Progress(
            TextColumn("{task.description:<18}"), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=Console(file=stream, force_terminal=True)) if self.shown else None

    def __enter__(self) -> Bars:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._progress is not None:
            self._progress.stop()

    def bar(self, label: str) -> Callback:
        """A callback that moves one bar named `label`; does nothing when no bars are shown."""
        if self._progress is None:
            return _quiet
        progress = self._progress
        task = progress.add_task(label, total=None)

        def show(done: int, total: int) -> None:
            if total <= 0:  # nothing to do is done
                done = total = 1
            progress.update(task, completed=done, total=max(total, done))

        return show


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
