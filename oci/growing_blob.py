"""`GrowingBlob`: a blob that can be read while it is still being written.

A large layer is pushed while it is compressed (issue 14: a 200 MB COPY
layer's upload used to start only once the layer was complete, and the
registry took about as long to take it as wharfie took to write it). The
blob store's writer (oci/blobstore.py) says how far the file has grown after
every write, and finally its digest and size, or that it failed; the uploader
(registry/pusher.py) reads what is there, by offset, from a descriptor opened
before the file could be renamed, and waits for more. The writer never waits
for the reader: a slow registry costs the reader time, not the build.
"""

from __future__ import annotations

import os
import threading

from oci.digest import Digest

__all__ = ["BlobWriteFailed", "GrowingBlob"]


class BlobWriteFailed(Exception):
    """The blob being read will never be complete: its writer failed, or the reader was told to stop."""


class GrowingBlob:
    """Shared between one writer thread and one reader thread; every method is thread-safe."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._fd: int | None = None
        self._written = 0
        self._digest: Digest | None = None
        self._failed: str | None = None

    # -- the writer's side (oci/blobstore.py) ----------------------------------------------------
    def attach(self, path: str) -> None:
        """The file the blob is written to, opened now for reading (it is renamed when complete)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with self._changed:
            if self._fd is None and self._failed is None:
                self._fd, fd = fd, -1
        if fd != -1:  # the reader gave up already (or a second attach): nobody will read it
            os.close(fd)

    def grew(self, written: int) -> None:
        """`written` bytes are in the file, readable by another descriptor."""
        with self._changed:
            self._written = written
            self._changed.notify_all()

    def complete(self, digest: Digest, size: int) -> None:
        with self._changed:
            self._written, self._digest = size, digest
            self._changed.notify_all()

    def fail(self, why: str) -> None:
        """The blob will not be complete (the writer's error, or the reader is told to give up)."""
        with self._changed:
            if self._digest is None and self._failed is None:
                self._failed = why
            self._changed.notify_all()

    def stop(self, why: str) -> None:
        """Tell the reader to give up, complete or not (a cancelled build): its next wait raises."""
        with self._changed:
            self._failed = self._failed or why
            self._changed.notify_all()

    # -- the reader's side ------------------------------------------------------------------------
    @property
    def digest(self) -> Digest | None:
        """The digest once the blob is complete, else None."""
        with self._changed:
            return self._digest

    def wait_for(self, offset: int) -> tuple[int, bool]:
        """Wait until more than `offset` bytes are written or the blob is complete: (bytes written, complete).

        Raises `BlobWriteFailed` if the blob will never be complete.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._failed is not None or self._digest is not None
                                   or self._written > offset)
            if self._failed is not None:
                raise BlobWriteFailed(self._failed)
            return self._written, self._digest is not None

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset` (of what `wait_for` said is written)."""
        with self._changed:
            fd = self._fd
        if fd is None:
            raise BlobWriteFailed("the blob's file is not open")
        return os.pread(fd, length, offset)

    def release(self) -> None:
        """Close the reading descriptor (the reader is done, whatever the outcome)."""
        with self._changed:
            fd, self._fd = self._fd, None
            if self._digest is None and self._failed is None:
                self._failed = "released"
        if fd is not None:
            os.close(fd)
