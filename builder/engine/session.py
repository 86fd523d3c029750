"""What every stage of one build shares: options, the registry client, the blob store, the work dir."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from builder.cache.layer_cache import LayerCache
from builder.context.dockerignore import IgnoreMatcher
from builder.engine.options import BuildOptions
from builder.frontend.plan import Scope
from builder.image.base import pull_base
from builder.image.state import ImageState
from oci.blobstore import BlobStore
from oci.digest import Digest
from registry.client import RegistryClient
from registry.reference import Reference

__all__ = ["BuildSession", "StageResult"]


@dataclass
class StageResult:
    """A built stage: what later stages (FROM, COPY --from) and the build's output read from it."""

    index: int
    name: str | None
    state: ImageState
    rootfs: Path | None  # extracted tree, when some step needed it
    scope: Scope  # variables at the end of the stage: a stage built FROM this one starts with them
    key: str  # the cache key of its last step: what a COPY --from of this stage depends on
    step_keys: tuple[tuple[str, int], ...] = ()  # (key, layer index or -1) of each filesystem step


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
