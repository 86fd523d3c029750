"""What every stage of one build shares: options, the registry client, the blob store, the work dir."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from builder.cache.layer_cache import LayerCache
from builder.context.dockerignore import IgnoreMatcher
from builder.engine.early_push import EarlyPush
from builder.engine.options import BuildOptions
from builder.execution.stacked_rootfs import StackedRootfs
from builder.frontend.plan import Scope
from builder.image.base import pull_base
from builder.image.state import ImageState
from builder.image.unpacked_store import UnpackedStore
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.growing_blob import GrowingBlob
from oci.layer import Layer
from oci.models import Platform
from registry.client import RegistryClient
from registry.reference import Reference

__all__ = ["BuildSession", "StageOutput", "StageResult", "log_step_output"]

StageOutput = Callable[[str], None]  # receives each line a RUN step's program writes


def log_step_output(line: str) -> None:
    """The default reporter of a RUN step's output: one INFO record per line (logger `wharfie.step`)."""
    logging.getLogger("wharfie.step").info("%s", line)


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
    tree: StackedRootfs | None = None  # when `rootfs` is an overlay stacked on the layer store


@dataclass
class BuildSession:
    options: BuildOptions
    client: RegistryClient
    store: BlobStore
    work_dir: Path
    ignore: IgnoreMatcher
    cache: LayerCache
    step_output: StageOutput = log_step_output  # a reporter the caller passes in (the CLI: stderr)
    results: dict[int, StageResult] = field(default_factory=dict)
    early_push: EarlyPush | None = None  # the image's layers go to the destinations while the build runs
    layer_store: UnpackedStore | None = None  # stage trees stack on it (builder/engine/stage_tree.py)
    trees: list[StackedRootfs] = field(default_factory=list)  # every stacked tree mounted, to unmount at the end
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("wharfie"))
    _images: dict[tuple[str, Platform], tuple[ImageState, Reference, Digest]] = field(default_factory=dict)

    def image(self, name: str, platform: Platform | None = None) -> tuple[ImageState, Reference, Digest]:
        """An image's state, reference and manifest digest for `platform` (default: the build's), resolved once.

        FROM, the cache key of a COPY --from and the copy itself all ask for the
        same image; one resolution also means they all see the same digest.
        """
        key = (name, platform or self.options.platform)
        if key not in self._images:
            self._images[key] = pull_base(name, client=self.client, platform=key[1], store=self.store)
        return self._images[key]

    def offer_layers(self, stage_index: int, layers: Sequence[Layer]) -> None:
        """A stage's layers so far: the target stage's start going to the destinations now."""
        if self.early_push is not None:
            self.early_push.offer(stage_index, layers)

    def growing_layer(self, stage_index: int) -> GrowingBlob | None:
        """Where a layer about to be written can be read while it is written: the target stage's go up at once."""
        return self.early_push.growing(stage_index) if self.early_push is not None else None

    def resolved_images(self) -> dict[tuple[str, Platform], tuple[ImageState, Reference, Digest]]:
        """Every image this build resolved, by (name as written, platform): what its provenance lists."""
        return dict(self._images)
