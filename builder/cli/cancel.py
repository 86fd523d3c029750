"""What SIGTERM, SIGINT and SIGHUP do to a running wharfie command.

A GitLab runner cancels a job, or ends it at its timeout, with SIGTERM and
SIGKILL after a grace period; a terminal sends SIGINT. The first signal
raises `Cancelled` in the main thread, wherever the command is; the `finally`
blocks on its way out stop the running step (its whole process group, and
with the sandbox's `unshare --kill-child` its pid namespace), undo in-place
placements, drop cache stores that have not started and let started ones
finish (a cache entry's tag is pushed last, so none is ever half-written),
and remove the command's one temporary directory (`private_tmpdir`), under
which everything temporary of the build lives. The CLI then prints one line
and exits 128 + the signal's number (143, 130, 129). A second signal ends the
process at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from layers.spread import spread_subdirectories

__all__ = ["CANCEL_SIGNALS", "Cancelled", "handle_cancel_signals", "private_tmpdir"]

CANCEL_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Cancelled(BaseException):
    """The command was asked to stop. A BaseException, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"cancelled by {signal.Signals(signum).name}")


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    for other in CANCEL_SIGNALS:
        signal.signal(other, _at_once)
    raise Cancelled(signum)


def _at_once(signum: int, _frame: FrameType | None) -> None:
    os._exit(128 + signum)


def handle_cancel_signals() -> None:
    """Install the handlers (main thread only, as Python requires)."""
    for signum in CANCEL_SIGNALS:
        signal.signal(signum, _on_signal)


@contextmanager
def private_tmpdir() -> Iterator[Path]:
    """One fresh `wharfie-*` directory that every temporary file of this process goes under, removed at the end.

    `tempfile` and the `TMPDIR` of the programs the command starts both
    point into it, so a cancelled build cannot leave a stray entry behind in
    the runner's $TMPDIR however it was interrupted.
    """
    parent = tempfile.gettempdir()
    path = Path(tempfile.mkdtemp(prefix="wharfie-", dir=parent))
    spread_subdirectories(path)  # on disk, the build's trees land away from those the last build deleted
    saved_env, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(path)
    tempfile.tempdir = str(path)
    try:
        yield path
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(path, ignore_errors=True)
