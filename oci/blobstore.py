"""A content-addressed blob directory (OCI image-layout's `blobs/` shape).

Blobs are written to a temp file in the same directory tree while they are
hashed, and renamed to their digest only when complete and verified, so a
reader never sees a partial blob and two builds sharing one store (one CI
runner, two jobs) cannot corrupt each other: rename is atomic, and two writers
of one digest write the same bytes.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from oci.digest import CHUNK, Digest, HashingWriter
from oci.errors import DigestMismatchError
from oci.growing_blob import GrowingBlob

__all__ = ["BlobStore", "BlobWriter"]


class BlobWriter(HashingWriter):
    """What `BlobStore.writer()` yields: write to it; digest and size are known at the end."""


class _GrowingWriter(BlobWriter):
    """A `BlobWriter` whose every write is at once readable through `growing` (oci/growing_blob.py)."""

    def __init__(self, target: BinaryIO, algorithm: str, growing: GrowingBlob) -> None:
        super().__init__(target, algorithm)
        self.growing = growing

    def write(self, data: bytes | memoryview) -> int:
        written = super().write(data)
        self.flush()  # to the kernel, where the reader's descriptor sees it (writes are ~1 MiB chunks)
        self.growing.grew(self.size)
        return written


class BlobStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex

    def has(self, digest: Digest) -> bool:
        return self.path(digest).is_file()

    def open(self, digest: Digest) -> BinaryIO:
        return open(self.path(digest), "rb")

    def size(self, digest: Digest) -> int:
        return self.path(digest).stat().st_size

    @contextmanager
    def lock(self, digest: Digest) -> Iterator[None]:
        """Hold an exclusive per-blob lock, so two builds on one runner fetch a blob once.

        Correctness never depends on it (rename is atomic); it only saves the
        second download.
        """
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{digest.algorithm}-{digest.hex}", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def writer(self, expected: Digest | None = None, *, what: str = "blob",
               growing: GrowingBlob | None = None) -> Iterator[BlobWriter]:
        """Yield a writer; on clean exit the blob is verified (if `expected`) and renamed into place.

        On any exception, or a digest mismatch, the temp file is removed and nothing
        appears in the store. With `growing`, another thread may read the blob while it
        is written; it is told the digest at the end, or that the blob failed.
        """
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="ingest-")
        tmp = Path(tmp_name)
        algorithm = expected.algorithm if expected is not None else "sha256"
        try:
            with os.fdopen(fd, "wb") as raw:
                if growing is not None:
                    growing.attach(tmp_name)
                writer = BlobWriter(raw, algorithm) if growing is None else _GrowingWriter(raw, algorithm, growing)
                yield writer
            actual = writer.digest
            if expected is not None and actual != expected:
                raise DigestMismatchError(what, str(expected), str(actual))
            final = self.path(actual)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            if growing is not None:
                growing.complete(actual, writer.size)
        except BaseException as exc:
            if growing is not None:
                growing.fail(f"writing the {what} failed: {exc or type(exc).__name__}")
            raise
        finally:
            tmp.unlink(missing_ok=True)

    def ingest(self, source: BinaryIO, expected: Digest | None = None, *, what: str = "blob") -> tuple[Digest, int]:
        """Copy a stream into the store; returns (digest, size)."""
        with self.writer(expected, what=what) as writer:
            while chunk := source.read(CHUNK):
                writer.write(chunk)
        return writer.digest, writer.size

    def put_bytes(self, data: bytes) -> Digest:
        digest = Digest.of_bytes(data)
        if not self.has(digest):
            with self.writer(digest) as writer:
                writer.write(data)
        return digest
