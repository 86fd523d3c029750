"""The phases of a build (resolving a base image, each step, the push), for whoever shows them.

The engine marks where a phase begins and ends and never how it is shown; the
CLI listens (builder/cli/log_sections.py: GitLab's collapsible log sections in
a job, a live view on a terminal). The listener is a context variable set
around one build with `listening`: no global state, nothing to pass through
every signature, and threads the build starts (layer pushes) see none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Phase", "PhaseListener", "listening", "phase"]

PhaseKind = Literal["pull", "step", "push"]


@dataclass(frozen=True)
class Phase:
    kind: PhaseKind
    title: str  # what a person reads: "FROM debian:bookworm", "RUN make", "push registry/app:1.0"


class PhaseListener(Protocol):
    def begin(self, phase: Phase) -> None: ...
    def end(self, phase: Phase, *, ok: bool) -> None: ...


_listener: ContextVar[PhaseListener | None] = ContextVar("wharfie_phase_listener", default=None)


@contextmanager
def listening(listener: PhaseListener) -> Iterator[None]:
    """Report the phases of what runs inside to `listener`."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


@contextmanager
def phase(kind: PhaseKind, title: str) -> Iterator[None]:
    """Mark what runs inside as one phase; it ends (not ok) when an exception leaves it."""
    listener = _listener.get()
    if listener is None:
        yield
        return
    current = Phase(kind, " ".join(title.split()))  # one line, whatever the Dockerfile's continuation lines
    listener.begin(current)
    try:
        yield
    except BaseException:
        listener.end(current, ok=False)
        raise
    listener.end(current, ok=True)
