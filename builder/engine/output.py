"""Where a built image goes: registry destinations, an OCI layout, a docker archive, digest files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from builder.engine.options import OutputOptions
from builder.engine.phases import phase
from builder.image.state import ImageState
from oci.digest import Digest
from oci.docker_archive import write_docker_archive
from oci.errors import WharfieError
from oci.layout import write_image_layout
from registry.errors import RegistryError
from registry.pusher import BlobPusher
from registry.reference import DEFAULT_TAG, Reference, parse_reference

__all__ = ["BuiltImage", "deliver"]

log = logging.getLogger(__name__)

# kaniko's tag of a --tar-path archive built without a destination (its DummyDestination).
NO_DESTINATION_TAG = "unset-repo/unset-image-name:latest"
# What registries say when a tag may not be overwritten (kaniko's list): Artifact Registry, ECR.
IMMUTABLE_TAG_ERRORS = ("The repository has enabled tag immutability",
                        "cannot be overwritten because the repository is immutable")


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


def _named(destinations: list[Reference], digest: Digest, *, with_tag: bool) -> str:
    """kaniko's image-name files: one REPO[:TAG]@DIGEST line per destination (an untagged one is :latest)."""
    lines = (f"{d.name}:{d.tag or DEFAULT_TAG}@{digest}" if with_tag else f"{d.name}@{digest}" for d in destinations)
    return "".join(line + "\n" for line in lines)


def _push(image: BuiltImage, destinations: list[Reference], output: OutputOptions, pusher: BlobPusher) -> None:
    try:
        # A base or cache-hit layer is mounted from its own repository (RemoteLayer.reference); a layer
        # built here goes to each registry once, and other repositories there mount it.
        pusher.push_image(destinations, image.manifest_raw, image.manifest_media_type, image.config_raw,
                          image.state.layers)
    except RegistryError as exc:
        if not (output.ignore_immutable_tag_errors and any(text in str(exc) for text in IMMUTABLE_TAG_ERRORS)):
            raise
        log.info("immutable tag error ignored (--push-ignore-immutable-tag-errors): %s", exc)


def deliver(image: BuiltImage, output: OutputOptions, pusher: BlobPusher) -> list[str]:
    """Push to every destination and write the requested files; returns `REF@DIGEST` per destination pushed.

    `pusher` is the build's: the layers it already has going up are joined, not pushed again.
    """
    destinations = [parse_reference(d) for d in output.destinations]
    files = (output.digest_file, output.image_name_with_digest_file, output.image_name_tag_with_digest_file,
             output.tar_path)
    for path in files:
        if path is not None and not path.parent.is_dir():  # found out before the push, not after
            raise WharfieError(f"cannot write {path}: {path.parent} is not a directory")
    pushed: list[str] = []
    if output.oci_layout_path is not None:
        write_image_layout(output.oci_layout_path, manifest_raw=image.manifest_raw,
                           manifest_media_type=image.manifest_media_type, config_raw=image.config_raw,
                           layers=image.state.layers, tag=destinations[0].tag if destinations else "latest")
        log.info("wrote OCI layout %s", output.oci_layout_path)
    if output.tar_path is not None:
        tags = [d.with_tag(d.tag or DEFAULT_TAG).familiar for d in destinations] or [NO_DESTINATION_TAG]
        write_docker_archive(output.tar_path, config_raw=image.config_raw, layers=image.state.layers, repo_tags=tags)
        log.info("wrote docker archive %s (%s)", output.tar_path, ", ".join(tags))
    if destinations and not output.no_push:
        with phase("push", "push " + ", ".join(str(d) for d in destinations)):
            _push(image, destinations, output, pusher)
        pushed = [f"{d.name}:{d.tag}@{image.digest}" if d.tag else f"{d.name}@{image.digest}" for d in destinations]
    if output.digest_file is not None:
        _write_atomically(output.digest_file, str(image.digest))
    if output.image_name_with_digest_file is not None:
        _write_atomically(output.image_name_with_digest_file, _named(destinations, image.digest, with_tag=False))
    if output.image_name_tag_with_digest_file is not None:
        _write_atomically(output.image_name_tag_with_digest_file, _named(destinations, image.digest, with_tag=True))
    return pushed
