"""Where a built image goes: registry destinations, an OCI layout, digest files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from builder.engine.options import OutputOptions
from builder.image.state import ImageState
from oci.digest import Digest
from oci.errors import WharfieError
from oci.layout import write_image_layout
from registry.pusher import BlobPusher
from registry.reference import parse_reference

__all__ = ["BuiltImage", "deliver"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltImage:
    state: ImageState
    manifest_raw: bytes
    manifest_media_type: str
    config_raw: bytes

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.manifest_raw)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def deliver(image: BuiltImage, output: OutputOptions, pusher: BlobPusher) -> list[str]:
    """Push to every destination and write the requested files; returns `REF@DIGEST` per destination.

    `pusher` is the build's: the layers it already has going up are joined, not pushed again.
    """
    destinations = [parse_reference(d) for d in output.destinations]
    for path in (output.digest_file, output.image_name_with_digest_file):
        if path is not None and not path.parent.is_dir():  # found out before the push, not after
            raise WharfieError(f"cannot write {path}: {path.parent} is not a directory")
    pushed: list[str] = []
    if output.oci_layout_path is not None:
        write_image_layout(output.oci_layout_path, manifest_raw=image.manifest_raw,
                           manifest_media_type=image.manifest_media_type, config_raw=image.config_raw,
                           layers=image.state.layers, tag=destinations[0].tag if destinations else "latest")
        log.info("wrote OCI layout %s", output.oci_layout_path)
    if destinations and not output.no_push:
        # A base or cache-hit layer is mounted from its own repository (RemoteLayer.reference); a layer
        # built here goes to each registry once, and other repositories there mount it.
        pusher.push_image(destinations, image.manifest_raw, image.manifest_media_type, image.config_raw,
                          image.state.layers)
        pushed = [f"{d.name}:{d.tag}@{image.digest}" if d.tag else f"{d.name}@{image.digest}" for d in destinations]
    if output.digest_file is not None:
        _write_atomically(output.digest_file, str(image.digest))
    if output.image_name_with_digest_file is not None:
        _write_atomically(output.image_name_with_digest_file, "".join(p + "\n" for p in pushed))
    return pushed


