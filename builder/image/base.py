"""Base images: `FROM scratch`, `FROM image` (pulled lazily), and turning layers into a rootfs.

A base image's layers are `RemoteLayer`s: nothing is downloaded until a step
needs the filesystem, and a push can mount them from their repository without
ever reading them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from builder.image.state import ImageState
from layers.extract import extract_layer
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.errors import WharfieError
from oci.layer import DescribedLayer, Layer
from oci.models import ContainerConfig, Descriptor, ImageConfig, Platform
from registry.client import RegistryClient
from registry.reference import Reference, parse_reference

__all__ = ["RemoteLayer", "materialize", "pull_base", "scratch_state"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RemoteLayer(DescribedLayer):
    """A layer in a registry repository, fetched into the blob store on first open."""

    descriptor: Descriptor
    diff_id: Digest
    reference: Reference
    client: RegistryClient
    store: BlobStore

    def open_compressed(self) -> BinaryIO:
        if not self.store.has(self.digest):
            self.client.download_blob(self.reference, self.descriptor, self.store)
        return self.store.open(self.digest)


def scratch_state(platform: Platform, *, path: str) -> ImageState:
    """BuildKit's empty image: the platform, and PATH set to docker's default (the frontend's
    `plan.DEFAULT_PATH`, which the engine passes: this package knows no Dockerfile rules)."""
    config = ImageConfig(architecture=platform.architecture, os=platform.os, variant=platform.variant,
                         config=ContainerConfig(env=(f"PATH={path}",)))
    return ImageState(config=config)


def pull_base(name: str, *, client: RegistryClient, platform: Platform, store: BlobStore) -> tuple[ImageState, Reference, Digest]:
    """Resolve `name` to one platform's image; returns its state, reference and manifest digest."""
    ref = parse_reference(name)
    resolved = client.resolve_image(ref, platform)
    config = resolved.config
    if len(config.diff_ids) != len(resolved.manifest.layers):
        raise WharfieError(f"base image {name}: its config lists {len(config.diff_ids)} diff_ids "
                           f"but its manifest {len(resolved.manifest.layers)} layers")
    layers: tuple[Layer, ...] = tuple(
        RemoteLayer(desc, diff_id, ref, client, store) for desc, diff_id in zip(resolved.manifest.layers, config.diff_ids)
    )
    return ImageState(config=config, layers=layers), ref, resolved.manifest_digest


def _prefetch(layers: tuple[Layer, ...]) -> None:
    """Download the layers that are not local yet, several at once (extraction stays in order)."""
    remote = [layer for layer in layers if isinstance(layer, RemoteLayer) and not layer.store.has(layer.digest)]
    if len(remote) < 2:
        return
    with ThreadPoolExecutor(max_workers=min(4, len(remote)), thread_name_prefix="fetch") as pool:
        for future in [pool.submit(layer.client.download_blob, layer.reference, layer.descriptor, layer.store)
                       for layer in remote]:
            future.result()


def materialize(state: ImageState, rootfs: Path, *, select: Callable[[str], bool] | None = None) -> None:
    """Extract every layer of `state` onto an empty `rootfs`, in order (only `select`ed paths, if given)."""
    rootfs.mkdir(parents=True, exist_ok=True)
    _prefetch(state.layers)
    for layer in state.layers:
        log.info("extracting %s", layer.digest.short)
        with layer.open_compressed() as blob:
            extract_layer(blob, rootfs, select=select)


