"""Uploading one blob: monolithic (POST + PUT) when small, chunked PATCHes when large.

The body streams from the blob's file; nothing is held whole in memory (a
chunk is sent as a bounded stream too). `upload_blob` is one attempt: the
push of the blob (registry/push.py) runs it under the one retry loop, with
the same `UploadCursor` each time, so an interrupted chunked upload asks the
registry how much it has (``GET`` on the session: ``Range: 0-N``) and goes on
from there, while a monolithic one, or one whose session is gone, starts over
in a fresh session.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import httpx

from oci.digest import CHUNK, Digest
from oci.growing_blob import GrowingBlob
from registry.errors import RegistryError
from registry.progress import NullProgress, Progress
from registry.reference import Reference
from registry.session import Session

__all__ = ["Blob", "UploadCursor", "cancel_upload", "start_upload", "upload_blob", "upload_growing",
           "upload_location"]

log = logging.getLogger(__name__)

_RANGE_RE = re.compile(r"(?:bytes=)?(\d+)-(\d+)")
_OCTET = "application/octet-stream"


class Blob(Protocol):
    """What an upload needs of a blob (a `Layer` is one; so is a config held in memory)."""

    @property
    def digest(self) -> Digest: ...
    @property
    def size(self) -> int: ...
    def open_compressed(self) -> BinaryIO: ...


def upload_location(response: httpx.Response, ref: Reference) -> str:
    location: str | None = response.headers.get("location")
    if not location:
        raise RegistryError(f"the registry answered {response.status_code} without a Location for {ref.context('push')}")
    return location


def start_upload(session: Session, ref: Reference) -> str:
    """POST to open an upload session; returns its Location (absolute or relative)."""
    response = session.call(ref, "POST", "blobs/uploads/", action="push", ok=(202,),
                            headers={"Content-Length": "0"}, what=f"upload to {ref.context('push')}")
    return upload_location(response, ref)


def cancel_upload(session: Session, ref: Reference, location: str) -> None:
    """DELETE an upload session we will not use (best effort: registries expire them anyway)."""
    try:
        session.call(ref, "DELETE", location, action="push", ok=(200, 202, 204, 404))
    except RegistryError as exc:
        log.debug("cancelling an upload session of %s: %s", ref.name, exc)


def _body(stream: BinaryIO, length: int, progress: Progress, key: str) -> Iterator[bytes]:
    remaining = length
    while remaining > 0:
        data = stream.read(min(CHUNK, remaining))
        if not data:
            raise RegistryError(f"blob {key} ended {remaining} bytes short of its declared size")
        remaining -= len(data)
        progress.advance(key, len(data))
        yield data


def _with_digest(session: Session, ref: Reference, location: str, digest: Digest) -> httpx.URL:
    return httpx.URL(session.url(ref, location)).copy_add_param("digest", str(digest))


def _put_whole(session: Session, ref: Reference, blob: Blob, location: str, progress: Progress) -> None:
    key = str(blob.digest)
    with blob.open_compressed() as stream:
        request = session.build(ref, "PUT", str(_with_digest(session, ref, location, blob.digest)), action="push",
                                content=_body(stream, blob.size, progress, key),
                                headers={"Content-Type": _OCTET, "Content-Length": str(blob.size)})
        session.send(ref, request, ok=(201, 204), action="push", what=f"blob {blob.digest.short} to {ref.context('push')}")


def _skip(stream: BinaryIO, offset: int) -> None:
    try:
        stream.seek(offset)
        return
    except (OSError, AttributeError, ValueError):
        pass
    remaining = offset
    while remaining > 0:
        data = stream.read(min(CHUNK, remaining))
        if not data:
            raise RegistryError(f"blob ended before byte {offset} while resuming an upload")
        remaining -= len(data)


def _upload_status(session: Session, ref: Reference, location: str) -> tuple[str, int]:
    """Where the registry's session is and how many bytes it holds (``Range: 0-N`` means N+1).

    distribution answers ``0-0`` for an empty session too; a first chunk is never a single
    byte, so ``0-0`` is read as nothing received (resuming at byte 1 would corrupt the blob).
    """
    response = session.call(ref, "GET", location, action="push", ok=(204, 200))
    match = _RANGE_RE.search(response.headers.get("range", ""))
    end = int(match.group(2)) if match else -1
    return response.headers.get("location") or location, (end + 1 if end > 0 else 0)


@dataclass
class UploadCursor:
    """Where an upload stands, kept across the attempts of one blob's push.

    `location` is the open session (from a refused mount, or our POST),
    `offset` the bytes the registry has accepted (updated after every PATCH),
    `interrupted` whether an earlier attempt failed (so where we stand must
    be asked of the registry before going on).
    """

    location: str | None = None
    offset: int = 0
    interrupted: bool = False

    def resume(self, session: Session, ref: Reference, chunked: bool) -> None:
        """After a failure: continue a chunked session where the registry says it is, else start afresh."""
        self.interrupted = False
        if not chunked or self.location is None:
            self.location, self.offset = None, 0
            return
        try:
            self.location, self.offset = _upload_status(session, ref, self.location)
        except (RegistryError, httpx.HTTPError) as exc:
            log.debug("upload session of %s is gone (%s); starting a new one", ref.name, exc)
            self.location, self.offset = None, 0


def _patch(session: Session, ref: Reference, cursor: UploadCursor, length: int, content: Iterator[bytes],
           what: str) -> None:
    """One PATCH of `length` bytes at the cursor; the cursor moves past them."""
    assert cursor.location is not None
    request = session.build(ref, "PATCH", cursor.location, action="push", content=content,
                            headers={"Content-Type": _OCTET, "Content-Length": str(length),
                                     "Content-Range": f"{cursor.offset}-{cursor.offset + length - 1}"})
    response = session.send(ref, request, ok=(202, 204), action="push", what=what)
    cursor.location = response.headers.get("location") or cursor.location
    cursor.offset += length


def _patch_chunks(session: Session, ref: Reference, blob: Blob, cursor: UploadCursor, chunk_size: int,
                  progress: Progress) -> None:
    key = str(blob.digest)
    with blob.open_compressed() as stream:
        _skip(stream, cursor.offset)
        while cursor.offset < blob.size:
            length = min(chunk_size, blob.size - cursor.offset)
            _patch(session, ref, cursor, length, _body(stream, length, progress, key),
                   f"blob {blob.digest.short} to {ref.context('push')}")


def _finish_chunked(session: Session, ref: Reference, digest: Digest, location: str) -> None:
    session.call(ref, "PUT", str(_with_digest(session, ref, location, digest)), action="push",
                 ok=(201, 204), headers={"Content-Length": "0"}, what=f"blob {digest.short} to {ref.context('push')}")


def upload_blob(session: Session, ref: Reference, blob: Blob, cursor: UploadCursor, *,
                progress: Progress | None = None) -> None:
    """One attempt at uploading `blob` into `ref`'s repository, from where `cursor` stands.

    Run it under `Session.retry` with the same cursor every attempt. Whether a
    failed attempt's blob arrived after all (a lost reply to the final PUT) is
    the caller's HEAD to ask, before the next attempt.
    """
    progress = progress or NullProgress()
    chunked = blob.size > session.options.chunk_threshold
    if cursor.interrupted:
        cursor.resume(session, ref, chunked)
    try:
        cursor.location = cursor.location or start_upload(session, ref)
        if not chunked:
            _put_whole(session, ref, blob, cursor.location, progress)
        else:
            _patch_chunks(session, ref, blob, cursor, session.options.chunk_size, progress)
            _finish_chunked(session, ref, blob.digest, cursor.location)
    except BaseException:
        cursor.interrupted = True
        raise


def _growing_body(growing: GrowingBlob, offset: int, length: int, progress: Progress, key: str) -> Iterator[bytes]:
    end = offset + length
    while offset < end:
        data = growing.read(offset, min(CHUNK, end - offset))
        if not data:
            raise RegistryError(f"a blob being written ended at byte {offset}, before byte {end}")
        offset += len(data)
        progress.advance(key, len(data))
        yield data


def upload_growing(session: Session, ref: Reference, growing: GrowingBlob, *,
                   progress: Progress | None = None) -> Digest | None:
    """Upload a blob while it is written (oci/growing_blob.py): chunks as the file grows, the digest at the end.

    A blob that ends no larger than one chunk is not sent at all (None): the ordinary push takes it,
    as any small blob. Else a session opens as soon as the blob outgrows a chunk, every chunk of new
    bytes is PATCHed as soon as it is written (a registry takes a large blob about as slowly as a
    build writes it: the earlier it starts, the less is left at the end), and the session is closed
    with the blob's digest once the writer knows it; the digest is returned. One attempt, no retry: a failure (the registry's, or the writer's)
    cancels the session and is raised, and the ordinary push of the finished blob starts over.
    """
    options = session.options
    written, complete = growing.wait_for(options.chunk_size)
    if complete and written <= options.chunk_size:
        return None
    progress = progress or NullProgress()
    key, what = f"growing-{id(growing)}", f"a layer being written to {ref.context('push')}"
    location = start_upload(session, ref)
    cursor = UploadCursor(location=location)
    progress.start(key, f"{ref.name} (a layer while it was written)", None)
    try:
        while True:
            written, complete = growing.wait_for(cursor.offset + options.chunk_size - 1)
            if complete and cursor.offset == written:
                break
            length = min(options.chunk_size, written - cursor.offset)
            _patch(session, ref, cursor, length, _growing_body(growing, cursor.offset, length, progress, key), what)
        digest = growing.digest
        assert digest is not None
        _finish_chunked(session, ref, digest, cursor.location or location)
    except BaseException:
        progress.finish(key, "interrupted (pushed again once written) the upload to")
        cancel_upload(session, ref, cursor.location or location)
        raise
    progress.finish(key, f"pushed {digest.short} to")
    return digest
