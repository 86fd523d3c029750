"""OCI image layout directories (image-spec `image-layout.md`): a sink and a source.

A layout is `oci-layout`, `index.json` and `blobs/<alg>/<hex>`, the same shape
as `BlobStore`, so writing one is a blob store plus an index. skopeo's `oci:`
transport and `umoci` read what this writes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from oci import mediatypes as mt
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.errors import WharfieError
from oci.layer import Layer
from oci.models import Descriptor, Index, canonical_json

__all__ = ["REF_ANNOTATION", "add_manifest", "open_layout", "read_layout_index", "write_image_layout"]

REF_ANNOTATION = "org.opencontainers.image.ref.name"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)  # gone already after the replace; removed if the write failed


def _remove_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass


def read_layout_index(root: Path) -> Index:
    path = root / "index.json"
    if not path.exists():
        return Index(mt.OCI_INDEX, ())
    return Index.from_bytes(path.read_bytes())


def open_layout(root: Path) -> BlobStore:
    """The layout at `root` (created if needed, its version checked) as a store to put blobs in."""
    root.mkdir(parents=True, exist_ok=True)
    layout_file = root / "oci-layout"
    if layout_file.exists():
        version = json.loads(layout_file.read_bytes()).get("imageLayoutVersion")
        if version != "1.0.0":
            raise WharfieError(f"{root}: unsupported OCI layout version {version!r}")
    else:
        _atomic_write(layout_file, canonical_json({"imageLayoutVersion": "1.0.0"}))
    return BlobStore(root)


def add_manifest(root: Path, manifest_raw: bytes, media_type: str, tag: str | None) -> Digest:
    """Store the manifest (its blobs already in) and name it in index.json; an entry of the same tag is replaced."""
    digest = BlobStore(root).put_bytes(manifest_raw)
    _remove_empty(root / "tmp")  # the store's ingest area is not part of the layout
    annotations = {REF_ANNOTATION: tag} if tag else None
    entry = Descriptor(media_type, digest, len(manifest_raw), annotations=annotations)
    kept = tuple(d for d in read_layout_index(root).manifests
                 if not tag or (d.annotations or {}).get(REF_ANNOTATION) != tag)
    _atomic_write(root / "index.json", Index(mt.OCI_INDEX, (*kept, entry)).to_bytes())
    return digest


def write_image_layout(root: Path, *, manifest_raw: bytes, manifest_media_type: str, config_raw: bytes,
                       layers: Iterable[Layer], tag: str | None = "latest") -> Digest:
    """Add one image to the layout at `root` (created if needed); returns the manifest digest.

    An existing entry with the same tag is replaced; other entries are kept.
    """
    store = open_layout(root)
    for layer in layers:
        if not store.has(layer.digest):
            with layer.open_compressed() as blob:
                store.ingest(blob, layer.digest, what=f"layer {layer.digest}")
    store.put_bytes(config_raw)
    return add_manifest(root, manifest_raw, manifest_media_type, tag)
