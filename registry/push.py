"""Pushing an image: every blob confirmed in the repository first, then the manifest, then each tag.

Per destination repository, each distinct blob (layers and the config,
deduplicated by digest) is: found by HEAD and skipped; else mounted from a
repository of the same registry known to hold it (the layer's own source,
the given mount sources, destinations already pushed); else uploaded. Blobs
go up `push_concurrency` at a time. The manifest is PUT only after every blob
is confirmed, so a failed push never leaves a tag pointing at missing blobs;
a re-run skips what is already there and finishes the job.

The retried operations are "make this blob present in this repository" and
"put this manifest under this tag", as in go-containerregistry: each attempt
at a blob starts with its HEAD, so a blob whose final PUT went through but
whose reply was lost counts as pushed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import BinaryIO

from oci.digest import Digest
from oci.errors import WharfieError
from oci.layer import Layer
from oci.models import Manifest
from registry.blobs import blob_exists
from registry.errors import RegistryError
from registry.manifests import put_manifest
from registry.mount import try_mount
from registry.progress import NullProgress, Progress
from registry.reference import Reference
from registry.session import Session
from registry.upload import Blob, UploadCursor, cancel_upload, upload_blob

__all__ = ["BytesBlob", "push_blobs", "push_image"]

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


def _push_one(session: Session, repo: Reference, blob: Blob, sources: Sequence[Reference], progress: Progress) -> str:
    """Make `blob` present in `repo`; returns how: "exists", "mounted" or "pushed"."""
    return _BlobPush(session, repo, blob, sources, progress).run()


def push_blobs(session: Session, repo: Reference, blobs: Sequence[Blob], sources: Sequence[Reference],
               progress: Progress) -> dict[Digest, str]:
    """Make every blob present in `repo` (deduplicated, concurrently); returns digest -> how."""
    unique: dict[Digest, Blob] = {}
    for blob in blobs:
        unique.setdefault(blob.digest, blob)
    items = list(unique.values())
    if not items:
        return {}
    # The first blob goes alone: it earns the token (and learns the scheme) that the pool then shares.
    done = {items[0].digest: _push_one(session, repo, items[0], sources, progress)}
    if len(items) > 1:
        workers = max(1, min(session.options.push_concurrency, len(items) - 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="push") as pool:
            futures = {pool.submit(_push_one, session, repo, b, sources, progress): b for b in items[1:]}
            finished, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            for future in finished:
                done[futures[future].digest] = future.result()  # re-raises the first failure
    return done


def _check_manifest(manifest_raw: bytes, media_type: str, blobs: Sequence[Blob]) -> None:
    """Refuse before any request a manifest naming a blob we were not given (it could never be complete)."""
    manifest = Manifest.from_bytes(manifest_raw, media_type)
    have = {b.digest: b.size for b in blobs}
    for desc in (manifest.config, *manifest.layers):
        if desc.digest not in have:
            raise WharfieError(f"the manifest names blob {desc.digest} but it was not given to push")
        if have[desc.digest] != desc.size:
            raise WharfieError(f"blob {desc.digest}: the manifest says {desc.size} bytes, the blob has "
                               f"{have[desc.digest]}")


def _by_repository(destinations: Sequence[Reference]) -> dict[Reference, list[Reference]]:
    groups: dict[Reference, list[Reference]] = {}
    for ref in destinations:
        groups.setdefault(ref.repo_ref, []).append(ref if (ref.tag or ref.digest) else ref.with_tag("latest"))
    return groups


def push_image(session: Session, destinations: Sequence[Reference], manifest_raw: bytes, manifest_media_type: str,
               config_raw: bytes, layers: Sequence[Layer], mount_sources: Sequence[Reference] = (), *,
               progress: Progress | None = None) -> Digest:
    """Push one image to every destination; returns the manifest digest."""
    if not destinations:
        raise WharfieError("nothing to push to: no destination given")
    progress = progress or NullProgress()
    blobs: list[Blob] = [BytesBlob(config_raw), *layers]
    _check_manifest(manifest_raw, manifest_media_type, blobs)
    digest = Digest.of_bytes(manifest_raw)
    by_repo = _by_repository(destinations)
    # Every repository gets all its blobs before any manifest is PUT, so a failure in a later
    # repository leaves no tag pushed anywhere (go-containerregistry's MultiWrite does the same).
    ready: list[Reference] = []
    for repo in by_repo:
        stats = push_blobs(session, repo, blobs, [*mount_sources, *ready], progress)
        log.debug("%s: %s", repo.name, ", ".join(f"{d.short} {how}" for d, how in stats.items()))
        ready.append(repo)
    for refs in by_repo.values():
        for ref in refs:
            put_manifest(session, ref, manifest_raw, manifest_media_type)
            log.info("pushed %s@%s", ref, digest)
    return digest
