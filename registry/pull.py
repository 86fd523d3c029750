"""Pulling an image to disk: blobs into a local cache, then a docker tarball or an OCI image layout.

For deploy servers that load images with ``docker load`` or hand an OCI
layout to another tool. Blobs are downloaded once into a content-addressed
`BlobStore` (verified, atomic, resumable) and streamed from there into the
output, which is itself written to a temp name and renamed, so a failed pull
never leaves a half-written tarball behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from oci.blobstore import BlobStore
from oci.docker_archive import write_docker_archive
from oci.errors import WharfieError
from oci.layer import StoredLayer
from oci.layout import REF_ANNOTATION, add_manifest, open_layout
from oci.models import Platform
from registry.client import RegistryClient
from registry.manifests import ResolvedImage
from registry.reference import Reference

__all__ = ["REF_NAME_ANNOTATION", "pull_image", "write_docker_tarball", "write_oci_layout"]

REF_NAME_ANNOTATION = REF_ANNOTATION


def pull_image(client: RegistryClient, ref: Reference, platform: Platform, store: BlobStore) -> ResolvedImage:
    """Resolve `ref` for `platform` and make sure its config and every layer are in `store`."""
    resolved = client.resolve_image(ref, platform)
    store.put_bytes(resolved.config_raw)
    for layer in resolved.manifest.layers:
        if layer.urls:
            raise WharfieError(f"{ref}: layer {layer.digest.short} is a foreign layer (served from {layer.urls[0]}); "
                               "not supported")
        client.download_blob(resolved.source, layer, store)
    return resolved


def write_docker_tarball(path: Path, image: ResolvedImage, store: BlobStore, repo_tags: Sequence[str]) -> None:
    """``docker save``'s format (oci/docker_archive.py), from the pulled blobs in `store`."""
    layers = [StoredLayer(desc, diff_id, store) for desc, diff_id in zip(image.manifest.layers, image.config.diff_ids)]
    write_docker_archive(path, config_raw=image.config_raw, layers=layers, repo_tags=repo_tags)


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def write_oci_layout(directory: Path, image: ResolvedImage, store: BlobStore, ref_name: str | None) -> None:
    """Add the image to an OCI image layout (created if absent), named `ref_name` in index.json.

    Blobs are hard-linked from the pull's store where the filesystem allows; the
    layout itself (version, index) is oci/layout.py's.
    """
    layout = open_layout(directory)
    for desc in (image.manifest.config, *image.manifest.layers):
        _link_or_copy(store.path(desc.digest), layout.path(desc.digest))
    add_manifest(directory, image.raw, image.media_type, ref_name)
