"""Per-blob progress of pushes and pulls: plain log lines, a redrawn terminal view, or nothing.

Verbs report to a `Progress` (start, advance, finish per blob); the CLI picks
the view: `TerminalProgress` on a TTY (a bar per blob with bytes, rate and
ETA, drawn by rich rather than by escape codes of our own), `LogProgress`
(one line per finished blob) otherwise, `NullProgress` for ``-q``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:  # rich (and pygments under it) loads only when a terminal shows bars: ~40 ms of every start
    from rich.progress import Progress as RichBars
    from rich.progress import TaskID

__all__ = ["LogProgress", "NullProgress", "Progress", "TerminalProgress", "choose_progress", "human_size",
           "new_live_progress"]

log = logging.getLogger(__name__)


class Progress(Protocol):
    def start(self, key: str, label: str, total: int | None) -> None: ...
    def advance(self, key: str, n: int) -> None: ...
    def finish(self, key: str, status: str) -> None: ...


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


class NullProgress:
    def start(self, key: str, label: str, total: int | None) -> None:
        pass

    def advance(self, key: str, n: int) -> None:
        pass

    def finish(self, key: str, status: str) -> None:
        pass


@dataclass
class _Entry:
    label: str
    total: int | None
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    status: str | None = None

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-6)


class LogProgress:
    """One log line per finished blob: what CI logs and pipes want."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def start(self, key: str, label: str, total: int | None) -> None:
        with self._lock:
            self._entries[key] = _Entry(label, total)

    def advance(self, key: str, n: int) -> None:
        with self._lock:
            if key in self._entries:
                self._entries[key].done += n

    def finish(self, key: str, status: str) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None:
            return
        if entry.done:
            self._log.info("%s %s (%s, %s/s)", status, entry.label, human_size(entry.done), human_size(entry.rate()))
        else:
            self._log.info("%s %s", status, entry.label)


def new_live_progress(stream: TextIO = sys.stderr) -> RichBars:
    """rich's progress display on `stream`: a bar, size, rate and time left per task; a spinner when unsized."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        SpinnerColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichBars

    console = Console(file=stream)
    return RichBars(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=True)


class TerminalProgress:
    """A bar per blob in flight, drawn by rich; a finished blob leaves one line above the bars.

    rich (a widely used, maintained library) owns the terminal: redraw rate, width, cursor, and
    lines printed meanwhile through its console. Given `bars`, it draws into a display its
    caller runs (the build's live view, builder/cli/live_view.py); else it runs its own while blobs move.
    """

    def __init__(self, stream: TextIO = sys.stderr, *, bars: RichBars | None = None) -> None:
        self._own = bars is None
        self._bars = bars or new_live_progress(stream)
        self._tasks: dict[str, tuple[TaskID, _Entry]] = {}
        self._lock = threading.Lock()

    def start(self, key: str, label: str, total: int | None) -> None:
        with self._lock:
            if self._own and not self._tasks:
                self._bars.start()
            self._tasks[key] = (self._bars.add_task(label, total=total), _Entry(label, total))

    def advance(self, key: str, n: int) -> None:
        with self._lock:
            found = self._tasks.get(key)
            if found is not None:
                found[1].done += n
                self._bars.advance(found[0], n)

    def finish(self, key: str, status: str) -> None:
        with self._lock:
            found = self._tasks.pop(key, None)
            if found is None:
                return
            task, entry = found
            self._bars.remove_task(task)
            size = f" {human_size(entry.done)}" if entry.done else ""
            self._bars.console.print(f"{status:>10} {entry.label}{size}", markup=False, highlight=False)
            if self._own and not self._tasks:
                self._bars.stop()


def choose_progress(*, quiet: bool, stream: TextIO = sys.stderr) -> Progress:
    """The view the CLI wants: nothing with -q, bars on a terminal, log lines otherwise."""
    if quiet:
        return NullProgress()
    if stream.isatty():
        return TerminalProgress(stream)
    return LogProgress()
