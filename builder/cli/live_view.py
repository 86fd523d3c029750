"""A build's live view on a terminal: a spinner on the phase running, a bar per blob moving (rich).

rich is a widely used, maintained library that owns what hand-written escape
codes get wrong: terminal width, redraw rate, the cursor, and lines printed
while bars are drawn (log lines and RUN output are printed above the view).
One rich display serves both the phases (builder/engine/phases.py) and the
registry's blob progress (registry/progress.py's `TerminalProgress` drawing
into it), since a terminal holds one live display at a time.
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import Self, TextIO

from rich.console import Group
from rich.live import Live
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from builder.engine.phases import Phase
from registry.progress import TerminalProgress, new_live_progress

__all__ = ["LiveView"]


class _CurrentStderr:
    """A stream that is whatever sys.stderr is now: rich swaps in its own while the display runs."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class LiveView:
    """A context manager and phase listener; `blobs` is the registry progress that draws into the same display."""

    def __init__(self, stream: TextIO) -> None:
        bars = new_live_progress(stream)
        self.blobs = TerminalProgress(bars=bars)
        # Phases show a spinner, the title and the time so far; blobs their bars below.
        self._phase_view = Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False),
                                    TimeElapsedColumn(), console=bars.console)
        self._live = Live(Group(self._phase_view, bars), console=bars.console, transient=True)
        self._phases: list[TaskID] = []
        self._handlers: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def __enter__(self) -> Self:
        self._live.start()  # replaces sys.stdout/sys.stderr with rich's proxies, printed above the display
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                self._handlers.append((handler, handler.setStream(_CurrentStderr())))  # type: ignore[arg-type]
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for handler, stream in self._handlers:
            handler.setStream(stream)
        self._live.stop()

    def begin(self, phase: Phase) -> None:
        self._phases.append(self._phase_view.add_task(phase.title, total=None))

    def end(self, phase: Phase, *, ok: bool) -> None:
        self._phase_view.remove_task(self._phases.pop())
