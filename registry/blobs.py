"""Reading blobs: existence checks, verified streams, and resumable downloads into a `BlobStore`.

A download is hashed as it is written and renamed into the store only when
its digest matches (`BlobStore.writer`), so a partial or corrupt blob is
never visible. Each attempt of the retry loop (registry/retry.py) goes on
from the bytes already written, with ``Range``, instead of starting over; a
registry that ignores ``Range`` (answers 200) is handled by skipping what we
already have.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from oci.blobstore import BlobStore, BlobWriter
from oci.digest import Digest, VerifyingReader
from oci.errors import DigestMismatchError
from oci.models import Descriptor
from registry.errors import LimitExceededError, RegistryError, RegistryUnreachableError
from registry.progress import NullProgress, Progress
from registry.reference import Reference
from registry.session import Session

__all__ = ["MAX_CONFIG_SIZE", "MAX_SMALL_BLOB", "ResponseReader", "blob_exists", "download_blob", "fetch_small_blob",
           "open_blob"]

log = logging.getLogger(__name__)

# Image configs are a few KB; large ones (long histories, many labels) stay well under a MB.
# containerd and distribution cap manifests at 4 MiB; a config gets twice that.
MAX_CONFIG_SIZE = 8 << 20
MAX_SMALL_BLOB = MAX_CONFIG_SIZE  # the old name
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class ResponseReader:
    """A file-like `read(n)` over a streamed httpx response body."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_bytes()
        self._buffer = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buffer += chunk
        if n < 0:
            n = len(self._buffer)
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


def blob_exists(session: Session, ref: Reference, digest: Digest, *, action: str = "pull") -> bool:
    """HEAD the blob in `ref`'s repository (`action` picks the token scope: "push" while pushing)."""
    what = f"blob {digest.short} in {ref.context(action)}"

    def head() -> bool:
        return session.call(ref, "HEAD", f"blobs/{digest}", action=action, ok=(200, 404), what=what).status_code == 200

    return session.retry(head, what=what)


@contextmanager
def open_blob(session: Session, ref: Reference, descriptor: Descriptor, *,
              what: str | None = None) -> Iterator[VerifyingReader]:
    """A stream of the blob that raises `DigestMismatchError` (naming `what`) at its end if the bytes are wrong.

    Opening is retried; a failure while the caller reads is the caller's (the stream cannot be replayed).
    """
    context = f"blob {descriptor.digest.short} of {ref.context('pull')}"
    response = session.retry(lambda: session.open(ref, "GET", f"blobs/{descriptor.digest}", action="pull",
                                                  what=context), what=context)
    try:
        yield VerifyingReader(ResponseReader(response), descriptor.digest,  # type: ignore[arg-type]
                              size=descriptor.size, what=what or f"blob {descriptor.digest} of {ref.name}")
    finally:
        response.close()


def fetch_small_blob(session: Session, ref: Reference, descriptor: Descriptor, *, what: str,
                     limit: int = MAX_CONFIG_SIZE) -> bytes:
    """A small blob (an image config) read whole and verified; more than `limit` bytes is refused unread."""
    if descriptor.size > limit:
        raise LimitExceededError(f"{what} is {descriptor.size} bytes, more than the {limit} allowed "
                                 "(limit: config size)", limit="config size")

    def fetch() -> bytes:
        with open_blob(session, ref, descriptor, what=what) as reader:
            data = reader.read(descriptor.size + 1)  # a byte more than the size raises DigestMismatchError
            reader.read(1)  # the end: the reader checks the digest there
        return data

    return session.retry(fetch, what=what)


def _resume_skip(response: httpx.Response, offset: int) -> int:
    """How many leading bytes of this response we already have."""
    if response.status_code != 206:
        return offset  # Range ignored: the whole blob again
    match = _CONTENT_RANGE_RE.match(response.headers.get("content-range", ""))
    start = int(match.group(1)) if match else 0
    if start > offset:
        raise RegistryError(f"the registry resumed at byte {start}, after the {offset} bytes we have")
    return offset - start


def _receive(session: Session, ref: Reference, descriptor: Descriptor, writer: BlobWriter,
             progress: Progress) -> None:
    """One GET (ranged when going on from an earlier attempt) appended to `writer`, to the blob's end."""
    offset = writer.size
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    what = f"blob {descriptor.digest.short} of {ref.context('pull')}"
    with session.stream(ref, "GET", f"blobs/{descriptor.digest}", action="pull", ok=(200, 206), headers=headers,
                        what=what) as response:
        skip = _resume_skip(response, offset) if offset else 0
        for chunk in response.iter_bytes():  # no chunk_size: httpx would buffer and lose bytes on a cut
            if skip:
                dropped = min(skip, len(chunk))
                chunk, skip = chunk[dropped:], skip - dropped
                if not chunk:
                    continue
            writer.write(chunk)
            progress.advance(str(descriptor.digest), len(chunk))
            if writer.size > descriptor.size:
                raise DigestMismatchError(f"blob {descriptor.digest} of {ref.name}", str(descriptor.digest),
                                          f"more than {descriptor.size} bytes")
    if writer.size < descriptor.size:  # a temporary failure: the next attempt goes on from here
        raise RegistryUnreachableError(f"{what}: the body ended after {writer.size} of {descriptor.size} bytes")


def download_blob(session: Session, ref: Reference, descriptor: Descriptor, store: BlobStore, *,
                  progress: Progress | None = None) -> Path:
    """Fetch a blob into `store` (verified, atomic, resumed across retries); a no-op if it is already there."""
    with store.lock(descriptor.digest):
        if not store.has(descriptor.digest):
            _download(session, ref, descriptor, store, progress or NullProgress())
    return store.path(descriptor.digest)


def _download(session: Session, ref: Reference, descriptor: Descriptor, store: BlobStore, progress: Progress) -> None:
    key = str(descriptor.digest)
    progress.start(key, descriptor.digest.short, descriptor.size)
    with store.writer(descriptor.digest, what=f"blob {descriptor.digest} of {ref.name}") as writer:
        session.retry(lambda: _receive(session, ref, descriptor, writer, progress),
                      what=f"blob {descriptor.digest.short} of {ref.context('pull')}")
    progress.finish(key, "downloaded")
