"""Per-blob progress of pushes and pulls: plain log lines, a redrawn terminal view, or nothing.

Verbs report to a `Progress` (start, advance, finish per blob); the CLI picks
the view: `TerminalProgress` on a TTY (a bar per blob with bytes, rate and
ETA, drawn with a few ANSI escapes: not worth a dependency), `LogProgress`
(one line per finished blob) otherwise, `NullProgress` for ``-q``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol, TextIO

__all__ = ["LogProgress", "NullProgress", "Progress", "TerminalProgress", "choose_progress", "human_size"]

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


class TerminalProgress:
    """A bar per active blob, redrawn in place at most ten times a second."""

    _WIDTH = 24

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._drawn = 0
        self._last = 0.0

    def start(self, key: str, label: str, total: int | None) -> None:
        with self._lock:
            self._entries[key] = _Entry(label, total)
            self._draw(force=True)

    def advance(self, key: str, n: int) -> None:
        with self._lock:
            if key in self._entries:
                self._entries[key].done += n
                self._draw()

    def finish(self, key: str, status: str) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.status = status
            self._draw(force=True)
            # Finished lines scroll up and stay; only active ones are redrawn.
            self._clear()
            self._stream.write(self._line(entry) + "\n")
            del self._entries[key]
            self._draw(force=True)

    def _line(self, entry: _Entry) -> str:
        if entry.status is not None:
            size = f" {human_size(entry.done)}" if entry.done else ""
            return f"{entry.status:>10} {entry.label}{size}"
        if entry.total:
            filled = int(self._WIDTH * min(entry.done, entry.total) / entry.total)
            bar = "#" * filled + "-" * (self._WIDTH - filled)
            rate = entry.rate()
            eta = (entry.total - entry.done) / rate if rate > 0 else 0
            return (f"{'':>10} {entry.label} [{bar}] {human_size(entry.done)}/{human_size(entry.total)} "
                    f"{human_size(rate)}/s ETA {eta:.0f}s")
        return f"{'':>10} {entry.label} {human_size(entry.done)}"

    def _clear(self) -> None:
        if self._drawn:
            self._stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        self._clear()
        for entry in self._entries.values():
            if entry.status is None:
                self._stream.write(self._line(entry) + "\n")
                self._drawn += 1
        self._stream.flush()


def choose_progress(*, quiet: bool, stream: TextIO = sys.stderr) -> Progress:
    """The view the CLI wants: nothing with -q, bars on a terminal, log lines otherwise."""
    if quiet:
        return NullProgress()
    if stream.isatty():
        return TerminalProgress(stream)
    return LogProgress()
