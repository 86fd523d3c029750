"""How a build's phases are shown: GitLab's collapsible log sections in a job, a live view on a terminal.

In a CI job (``CI=true``, no terminal) each phase the engine marks
(builder/engine/phases.py: resolving a base, each step, the push) is framed
by GitLab's section markers, so the job log folds per step::

    \\e[0Ksection_start:<epoch>:<name>[collapsed=true]\\r\\e[0K<title>
    ...the phase's log and RUN output...
    \\e[0Ksection_end:<epoch>:<name>\\r\\e[0K

(the format of docs.gitlab.com/ci/jobs/job_logs, "custom collapsible
sections"). They go to stderr, the stream the log and RUN output they frame
are written to, so the runner keeps their order. The pull and the push start
collapsed; steps open, since a failing step's output is what one looks for.
On a terminal the view is builder/cli/live_view.py's (rich). With
``--log-format json`` there is neither: every line stays JSON.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

from builder.engine.phases import Phase, listening
from registry.client import RegistryClient

__all__ = ["GitLabSections", "build_view", "wants_sections"]


def _printable(text: str) -> str:
    """A title from the Dockerfile, with control characters (a fake marker, escape codes) made harmless."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


class GitLabSections:
    """A phase listener writing GitLab's section markers; sections are numbered in build order."""

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.time) -> None:
        self._stream = stream
        self._clock = clock
        self._count = 0
        self._open: list[str] = []

    def begin(self, phase: Phase) -> None:
        self._count += 1
        name = f"wharfie_{phase.kind}_{self._count}"
        self._open.append(name)
        options = "[collapsed=true]" if phase.kind in ("pull", "push") else ""
        self._write(f"\x1b[0Ksection_start:{int(self._clock())}:{name}{options}\r\x1b[0K{_printable(phase.title)}")

    def end(self, phase: Phase, *, ok: bool) -> None:
        name = self._open.pop()
        self._write(f"\x1b[0Ksection_end:{int(self._clock())}:{name}\r\x1b[0K")

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()


def wants_sections(environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> bool:
    """In a CI job (CI=true) whose output no terminal shows: GitLab's runner reads it."""
    return environ.get("CI") == "true" and not stdout.isatty() and not stderr.isatty()


@contextmanager
def build_view(client: RegistryClient, *, quiet: bool, log_format: str,
               environ: Mapping[str, str] | None = None) -> Iterator[None]:
    """Show the phases of the build run inside: sections in a CI job, a live view on a terminal, else nothing."""
    environ = os.environ if environ is None else environ
    if quiet or log_format == "json":
        yield
    elif wants_sections(environ, sys.stdout, sys.stderr):
        with listening(GitLabSections(sys.stderr)):
            yield
    elif sys.stderr.isatty():
        from builder.cli.live_view import LiveView

        with LiveView(sys.stderr) as view, listening(view):
            client.progress = view.blobs  # the blob bars share the view's display
            yield
    else:
        yield
