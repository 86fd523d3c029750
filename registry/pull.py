"""Pulling an image to disk: blobs into a local cache, then a docker tarball or an OCI image layout.

For deploy servers that load images with ``docker load`` or hand an OCI
layout to another tool. Blobs are downloaded once into a content-addressed
`BlobStore` (verified, atomic, resumable) and streamed from there into the
output, which is itself written to a temp name and renamed, so a failed pull
never leaves a half-written tarball behind.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.errors import WharfieError
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


def _add_blob(tar: tarfile.TarFile, name: str, store: BlobStore, digest: Digest) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = store.size(digest), 0o644, 0
    with store.open(digest) as blob:
        tar.addfile(info, blob)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def write_docker_tarball(path: Path, image: ResolvedImage, store: BlobStore, repo_tags: Sequence[str]) -> None:
    """``docker save``'s format (``manifest.json`` + config + layers, kept compressed: docker load accepts that)."""
    config_name = f"{image.manifest.config.digest.hex}.json"
    layer_names = [f"{layer.digest.hex}.tar.gz" for layer in image.manifest.layers]
    manifest = [{"Config": config_name, "RepoTags": list(repo_tags), "Layers": layer_names}]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_blob(tar, config_name, store, image.manifest.config.digest)
            seen: set[str] = set()
            for name, layer in zip(layer_names, image.manifest.layers):
                if name not in seen:  # a layer repeated in one image is stored once, as docker save does
                    _add_blob(tar, name, store, layer.digest)
                    seen.add(name)
            _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


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
