"""What every stage of one build shares: options, the registry client, the blob store, the work dir."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from builder.base import pull_base
from builder.dockerignore import IgnoreMatcher
from builder.image import ImageState
from builder.layer_cache import LayerCache
from builder.options import BuildOptions
from oci.blobstore import BlobStore
from oci.digest import Digest
from registry.client import RegistryClient
from registry.reference import Reference

if TYPE_CHECKING:
    from builder.stage import StageResult

__all__ = ["BuildSession"]


@dataclass
class BuildSession:
    options: BuildOptions
    client: RegistryClient
    store: BlobStore
    work_dir: Path
    ignore: IgnoreMatcher
    cache: LayerCache
    results: dict[int, StageResult] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("wharfie"))
    _images: dict[str, tuple[ImageState, Reference, Digest]] = field(default_factory=dict)

    def image(self, name: str) -> tuple[ImageState, Reference, Digest]:
        """An image's state, reference and manifest digest, resolved once per build.

        FROM, the cache key of a COPY --from and the copy itself all ask for the
        same image; one resolution also means they all see the same digest.
        """
        if name not in self._images:
            self._images[name] = pull_base(name, client=self.client, platform=self.options.platform,
                                           store=self.store)
        return self._images[name]
