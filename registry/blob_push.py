"""Making one blob present in one repository: HEAD, else a cross-repository mount, else an upload.

A blob is found by HEAD and skipped; else mounted from a repository of the
same registry known to hold it (the layer's own source, then the given
sources: the base's or cache repository, destinations already holding it);
else uploaded (registry/upload.py). Several blobs and repositories at once,
and the manifests after them, are registry/pusher.py's job.

The retried operations are "make this blob present in this repository" and
"put this manifest under this tag", as in go-containerregistry: each attempt
at a blob starts with its HEAD, so a blob whose final PUT went through but
whose reply was lost counts as pushed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from oci.digest import Digest
from registry.blobs import blob_exists
from registry.errors import RegistryError
from registry.mount import try_mount
from registry.progress import Progress
from registry.reference import Reference
from registry.session import Session
from registry.upload import Blob, UploadCursor, cancel_upload, upload_blob

__all__ = ["BytesBlob", "push_blob"]

log = logging.getLogger(__name__)

_MAX_MOUNT_TRIES = 3


@dataclass(frozen=True)
class BytesBlob:
    """A small blob held in memory (an image config)."""

    data: bytes
    media_type: str = "application/octet-stream"

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def open_compressed(self) -> BinaryIO:
        return io.BytesIO(self.data)


def _mount_candidates(blob: Blob, repo: Reference, sources: Sequence[Reference]) -> list[Reference]:
    # A layer read from a registry knows its repository (builder's RemoteLayer
    # has `.reference`): it certainly holds the blob, so try it first.
    own = getattr(blob, "reference", None)
    ordered = ([own] if isinstance(own, Reference) else []) + list(sources)
    out: list[Reference] = []
    for source in ordered:
        same_registry = source.registry == repo.registry and source.repository != repo.repository
        if same_registry and all(source.repository != o.repository for o in out):
            out.append(source.repo_ref)
    return out[:_MAX_MOUNT_TRIES]


@dataclass
class _BlobPush:
    """One blob's push to one repository, across the attempts of the retry loop."""

    session: Session
    repo: Reference
    blob: Blob
    sources: Sequence[Reference]
    progress: Progress
    cursor: UploadCursor = field(default_factory=UploadCursor)
    mounts_tried: bool = False

    def run(self) -> str:
        """Make the blob present; returns how: "exists", "mounted" or "pushed"."""
        return self.session.retry(self.attempt, what=f"blob {self.blob.digest.short} to {self.repo.context('push')}")

    def attempt(self) -> str:
        key, label = str(self.blob.digest), f"{self.blob.digest.short} to {self.repo.name}"
        if blob_exists(self.session, self.repo, self.blob.digest, action="push"):
            self.progress.start(key, label, self.blob.size)
            self.progress.finish(key, "exists")
            return "exists"
        if not self.mounts_tried:  # a mount refused once is refused again: the upload goes on from here
            self.mounts_tried = True
            source = self._mount()
            if source is not None:
                self.progress.start(key, label, self.blob.size)
                self.progress.finish(key, f"mounted from {source.repository}")
                return "mounted"
        self.progress.start(key, label, self.blob.size)
        upload_blob(self.session, self.repo, self.blob, self.cursor, progress=self.progress)
        self.progress.finish(key, "pushed")
        return "pushed"

    def _mount(self) -> Reference | None:
        """Try each mount source; the repository that mounted, else None (an offered session kept in the cursor)."""
        for source in _mount_candidates(self.blob, self.repo, self.sources):
            try:
                result = try_mount(self.session, self.repo, self.blob.digest, source)
            except RegistryError as exc:
                log.debug("mount of %s from %s refused: %s", self.blob.digest.short, source.repository, exc)
                continue
            if result.mounted:
                return source
            if self.cursor.location is not None:
                cancel_upload(self.session, self.repo, self.cursor.location)
            self.cursor.location = result.location
        return None


def push_blob(session: Session, repo: Reference, blob: Blob, sources: Sequence[Reference], progress: Progress) -> str:
    """Make `blob` present in `repo` (retried whole); returns how: "exists", "mounted" or "pushed"."""
    return _BlobPush(session, repo, blob, sources, progress).run()
