"""Pushing a finished image, or a few blobs, in one call: a `BlobPusher` used once.

Per destination repository, each distinct blob (layers and the config,
deduplicated by digest) is found by HEAD, mounted or uploaded
(registry/blob_push.py), `push_concurrency` at a time; the manifest is PUT
only after every blob of every destination repository is confirmed, so a
failed push never leaves a tag pointing at missing blobs, and a re-run skips
what is already there and finishes the job. A build pushes through a
`BlobPusher` of its own instead, started while it runs (registry/pusher.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from oci.digest import Digest
from oci.layer import Layer
from registry.blob_push import BytesBlob
from registry.progress import NullProgress, Progress
from registry.pusher import BlobPusher
from registry.reference import Reference
from registry.session import Session
from registry.upload import Blob

__all__ = ["BytesBlob", "push_blobs", "push_image"]


def push_blobs(session: Session, repo: Reference, blobs: Sequence[Blob], sources: Sequence[Reference],
               progress: Progress) -> dict[Digest, str]:
    """Make every blob present in `repo` (deduplicated, concurrently); returns digest -> how."""
    with BlobPusher(session, mount_sources=sources, progress=progress) as pusher:
        futures = {blob.digest: pusher.add(blob, [repo])[0] for blob in blobs}
        pusher.wait(list(futures.values()))
        return {digest: future.result() for digest, future in futures.items()}


def push_image(session: Session, destinations: Sequence[Reference], manifest_raw: bytes, manifest_media_type: str,
               config_raw: bytes, layers: Sequence[Layer], mount_sources: Sequence[Reference] = (), *,
               progress: Progress | None = None) -> Digest:
    """Push one image to every destination; returns the manifest digest."""
    with BlobPusher(session, mount_sources=mount_sources, progress=progress or NullProgress()) as pusher:
        return pusher.push_image(destinations, manifest_raw, manifest_media_type, config_raw, layers)
