"""A layer that lives in a registry repository: go-containerregistry's ``remote.Layer``.

Lazy: building one sends nothing. Its bytes are downloaded into a `BlobStore`
(verified, atomic, resumable) the first time someone opens it, and a push to
the same registry mounts it from `reference` without ever reading it
(registry/push.py asks a blob for its `reference`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.layer import DescribedLayer
from oci.models import Descriptor
from registry.reference import Reference

__all__ = ["BlobSource", "RemoteLayer"]


class BlobSource(Protocol):
    """What a remote layer needs of a client (a `RegistryClient` is one)."""

    def download_blob(self, ref: Reference, descriptor: Descriptor, store: BlobStore) -> Path: ...


@dataclass(frozen=True)
class RemoteLayer(DescribedLayer):
    """A layer in `reference`'s repository, fetched into `store` on first open."""

    descriptor: Descriptor
    diff_id: Digest
    reference: Reference
    client: BlobSource
    store: BlobStore

    @property
    def local(self) -> bool:
        """Whether the blob is in the store already (opening it sends nothing)."""
        return self.store.has(self.digest)

    def fetch(self) -> Path:
        """Download the blob into the store unless it is there; its path."""
        return self.client.download_blob(self.reference, self.descriptor, self.store)

    def open_compressed(self) -> BinaryIO:
        self.fetch()
        return self.store.open(self.digest)
