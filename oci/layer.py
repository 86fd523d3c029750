"""The `Layer` protocol every layer source speaks, after go-containerregistry's v1.Layer.

A layer is a compressed tar blob named by `digest` whose uncompressed tar is
named by `diff_id`. Sources differ only in how the bytes are opened: a file in
a `BlobStore`, a registry blob fetched on demand, a cached entry. A layer that
is only referenced (a base layer, a cache hit) need never be opened when the
push can mount it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.models import Descriptor

__all__ = ["DescribedLayer", "Layer", "StoredLayer"]


@runtime_checkable
class Layer(Protocol):
    @property
    def digest(self) -> Digest: ...
    @property
    def diff_id(self) -> Digest: ...
    @property
    def size(self) -> int: ...
    @property
    def media_type(self) -> str: ...
    def open_compressed(self) -> BinaryIO: ...


class DescribedLayer:
    """The `Layer` properties that come from a descriptor; subclasses say how to open the blob."""

    descriptor: Descriptor

    @property
    def digest(self) -> Digest:
        return self.descriptor.digest

    @property
    def size(self) -> int:
        return self.descriptor.size

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type


@dataclass(frozen=True)
class StoredLayer(DescribedLayer):
    """A layer whose compressed blob is in a local `BlobStore`."""

    descriptor: Descriptor
    diff_id: Digest
    store: BlobStore

    def open_compressed(self) -> BinaryIO:
        return self.store.open(self.digest)
