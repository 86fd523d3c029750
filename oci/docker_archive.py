"""``docker save``'s archive format: what ``docker load`` and skopeo's ``docker-archive:`` read.

One tar holding ``manifest.json`` (``[{"Config", "RepoTags", "Layers"}]``), the
image config and each layer blob as it is (compressed: docker load and skopeo
detect gzip and zstd themselves, as go-containerregistry's tarball writer relies
on). Written for `wharfie pull --tar-path` and kaniko's `build --tar-path`. Blobs
are streamed from their `Layer`s into a temp file beside the target, renamed
into place at the end: a failure never leaves half an archive.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from oci import mediatypes as mt
from oci.digest import Digest
from oci.layer import Layer

__all__ = ["write_docker_archive"]

_SUFFIX = {"gzip": ".tar.gz", "zstd": ".tar.zst", "none": ".tar"}


def _add(tar: tarfile.TarFile, name: str, size: int, stream: BinaryIO) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    tar.addfile(info, stream)


def write_docker_archive(path: Path, *, config_raw: bytes, layers: Sequence[Layer], repo_tags: Sequence[str]) -> None:
    """Write the image (its config bytes and layers, in order) to `path`, tagged `repo_tags` for docker load."""
    config_name = f"{Digest.of_bytes(config_raw).hex}.json"
    names = [f"{layer.digest.hex}{_SUFFIX[mt.LAYER_COMPRESSION.get(layer.media_type, 'gzip')]}" for layer in layers]
    manifest = [{"Config": config_name, "RepoTags": list(repo_tags), "Layers": names}]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, config_name, len(config_raw), io.BytesIO(config_raw))
            seen: set[str] = set()
            for name, layer in zip(names, layers):
                if name in seen:  # a layer repeated in one image is stored once, as docker save does
                    continue
                seen.add(name)
                with layer.open_compressed() as blob:
                    _add(tar, name, layer.size, blob)
            data = json.dumps(manifest).encode()
            _add(tar, "manifest.json", len(data), io.BytesIO(data))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
