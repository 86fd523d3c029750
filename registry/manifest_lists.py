"""Joining per-architecture images into one multi-platform image: an OCI image index or a Docker manifest list.

Each source is an image already pushed (one job per architecture built it);
its platform is read from its config, not trusted from a flag. Its blobs are
made present in the destination repository (found there, mounted from the
source's repository on the same registry, else copied through the local
blob store), then its manifest is put there by digest, and only then the
index under the destination's tag: a failed run never leaves a tag naming
manifests the repository lacks. A source that is itself an index
contributes each of its entries.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from oci import mediatypes as mt
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.errors import WharfieError
from oci.models import Descriptor, ImageConfig, Index, Manifest, Platform
from registry.blobs import download_blob, fetch_small_blob
from registry.manifests import get_manifest, put_manifest
from registry.progress import NullProgress, Progress
from registry.push import push_blobs
from registry.reference import Reference
from registry.session import Session

__all__ = ["RemoteBlob", "create_index"]

log = logging.getLogger(__name__)

_MAX_ENTRIES = 64


@dataclass(frozen=True)
class RemoteBlob:
    """A blob of another repository: mounted when the registry allows, else fetched into `store` and uploaded."""

    descriptor: Descriptor
    reference: Reference  # push_blobs tries a mount from here first
    session: Session
    store: BlobStore

    @property
    def digest(self) -> Digest:
        return self.descriptor.digest

    @property
    def size(self) -> int:
        return self.descriptor.size

    def open_compressed(self) -> BinaryIO:
        if not self.store.has(self.digest):
            download_blob(self.session, self.reference, self.descriptor, self.store)
        return self.store.open(self.digest)


def _entries(session: Session, source: Reference) -> list[tuple[Reference, bytes, str, Digest]]:
    """(pinned reference, raw, media type, digest) of each image manifest `source` names."""
    raw, media_type, digest = get_manifest(session, source)
    if mt.is_manifest(media_type):
        return [(source.repo_ref.with_digest(digest), raw, media_type, digest)]
    if not mt.is_index(media_type):
        raise WharfieError(f"{source}: a {media_type} is neither an image nor an index")
    out = []
    for entry in Index.from_bytes(raw, media_type).manifests:
        if mt.is_manifest(entry.media_type):
            pinned = source.repo_ref.with_digest(entry.digest)
            child_raw, child_type, child_digest = get_manifest(session, pinned)
            out.append((pinned, child_raw, child_type, child_digest))
    return out


def _platform(session: Session, ref: Reference, manifest: Manifest) -> Platform:
    """The image's platform as its config states it."""
    config = ImageConfig.from_bytes(fetch_small_blob(session, ref, manifest.config, what=f"config of {ref}"))
    if not config.os or not config.architecture:
        raise WharfieError(f"{ref}: its config names no os/architecture, so it has no place in an index")
    return config.platform


def create_index(session: Session, destination: Reference, sources: Sequence[Reference], *, docker: bool,
                 store: BlobStore, progress: Progress | None = None) -> tuple[bytes, str, Digest]:
    """Put every source's image into `destination`'s repository and an index of them under its tag.

    Returns (index bytes, media type, digest).
    """
    progress = progress or NullProgress()
    repo = destination.repo_ref
    entries: list[Descriptor] = []
    seen: dict[Platform, Reference] = {}
    for source in sources:
        for pinned, raw, media_type, digest in _entries(session, source):
            manifest = Manifest.from_bytes(raw, media_type)
            platform = _platform(session, pinned, manifest)
            if platform in seen:
                raise WharfieError(f"{pinned} and {seen[platform]} are both {platform}: an index holds one "
                                   "image per platform")
            seen[platform] = pinned
            if pinned.repo_ref != repo:
                blobs = [RemoteBlob(d, pinned, session, store) for d in (manifest.config, *manifest.layers)]
                push_blobs(session, repo, blobs, [pinned.repo_ref], progress)
                put_manifest(session, repo.with_digest(digest), raw, media_type)
            entries.append(Descriptor(media_type, digest, len(raw), platform=platform))
            log.info("%s: %s", platform, pinned)
    if not entries:
        raise WharfieError("no image to put in the index: the sources name no image manifest")
    if len(entries) > _MAX_ENTRIES:
        raise WharfieError(f"{len(entries)} images: more than the {_MAX_ENTRIES} an index is allowed here")
    index = Index(mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX, tuple(entries))
    raw_index = index.to_bytes()
    target = destination if destination.tag or destination.digest else destination.with_tag("latest")
    digest = put_manifest(session, target, raw_index, index.media_type)
    return raw_index, index.media_type, digest
