"""Removing the stage trees of a finished build while its push ends, instead of after it.

Once the last stage is built no step reads a stage's tree again (the image
is its layers), but deleting thousands of files costs real time on some
filesystems (ext4 here: each unlink goes through the journal). A thread
does it while the pusher joins its last uploads and the manifest goes up;
the build waits for it before it returns, so nothing is left behind.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

__all__ = ["BackgroundRemoval", "Removable"]


class Removable(Protocol):
    """A stage tree that knows how to go (a stacked one unmounts first)."""

    def remove(self) -> None: ...


class BackgroundRemoval:
    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    def start(self, trees: Iterable[Path | Removable]) -> None:
        """Begin removing `trees` (directories, or trees that remove themselves, nothing will read again)."""
        items = list(trees)
        if items and self._thread is None:
            self._thread = threading.Thread(target=_remove_all, args=(items,), name="remove-trees")
            self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()


def _remove_all(items: list[Path | Removable]) -> None:
    for item in items:
        if isinstance(item, Path):
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.remove()
