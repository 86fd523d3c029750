"""Manifests: fetch with the full Accept list, verify, resolve an index to a platform, put, delete.

A manifest is small and is needed whole (to parse it and to hash it), so it is
the one thing read into memory, up to a cap that a hostile registry cannot
make us exceed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from oci import mediatypes as mt
from oci.digest import Digest
from oci.errors import DigestMismatchError, WharfieError
from oci.models import Descriptor, ImageConfig, Index, Manifest, Platform
from registry.blobs import fetch_small_blob
from registry.errors import NotFoundError, RegistryError
from registry.reference import Reference
from registry.session import Session

__all__ = [
    "MAX_MANIFEST_SIZE",
    "ResolvedImage",
    "delete_manifest",
    "get_manifest",
    "head_manifest",
    "put_manifest",
    "resolve_image",
]

log = logging.getLogger(__name__)

MAX_MANIFEST_SIZE = 4 << 20  # containerd's limit too: real manifests are a few KB


@dataclass(frozen=True)
class ResolvedImage:
    """One platform's image: manifest and config, parsed and as the registry sent them.

    `source` is the repository it was read from, pinned to the manifest digest
    (a mirror's, when a mirror answered): blobs are fetched from there.
    """

    manifest: Manifest
    manifest_digest: Digest
    raw: bytes
    media_type: str
    config: ImageConfig
    config_raw: bytes
    source: Reference
    index_digest: Digest | None = None


def _media_type(content_type: str | None, raw: bytes) -> str:
    value = (content_type or "").split(";")[0].strip()
    if value and value not in ("application/json", "text/plain", "application/octet-stream"):
        return value
    try:
        found = json.loads(raw).get("mediaType")
    except (ValueError, AttributeError):
        found = None
    return str(found or mt.OCI_MANIFEST)


def get_manifest(session: Session, ref: Reference, accept: str = mt.MANIFEST_ACCEPT) -> tuple[bytes, str, Digest]:
    """GET a manifest: returns (raw bytes, media type, digest); verifies the digest when `ref` names one."""
    what = f"{ref} (pull)"

    def fetch() -> tuple[bytes, str | None, str | None]:
        with session.stream(ref, "GET", f"manifests/{ref.identifier}", action="pull", headers={"Accept": accept},
                            what=what) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_MANIFEST_SIZE:
                    raise RegistryError(f"manifest of {ref} is larger than {MAX_MANIFEST_SIZE} bytes")
                chunks.append(chunk)
            return b"".join(chunks), response.headers.get("content-type"), response.headers.get("docker-content-digest")

    raw, content_type, header_digest = session.retry(fetch, what=what)
    digest = Digest.of_bytes(raw)
    if ref.digest is not None and digest != ref.digest:
        raise DigestMismatchError(f"manifest {ref}", str(ref.digest), str(digest))
    if header_digest and header_digest != str(digest):
        log.warning("%s: the registry says the manifest is %s but its bytes hash to %s", ref, header_digest, digest)
    return raw, _media_type(content_type, raw), digest


def head_manifest(session: Session, ref: Reference, accept: str = mt.MANIFEST_ACCEPT) -> Descriptor:
    """HEAD a manifest: its descriptor (digest from ``Docker-Content-Digest``), without the body."""
    what = f"{ref} (pull)"
    response = session.retry(lambda: session.call(ref, "HEAD", f"manifests/{ref.identifier}", action="pull",
                                                  headers={"Accept": accept}, what=what), what=what)
    header = response.headers.get("docker-content-digest")
    if not header:
        raw, media_type, digest = get_manifest(session, ref, accept)
        return Descriptor(media_type, digest, len(raw))
    return Descriptor(_media_type(response.headers.get("content-type"), b"{}"), Digest.parse(header),
                      int(response.headers.get("content-length") or 0))


def resolve_image(session: Session, ref: Reference, platform: Platform) -> ResolvedImage:
    """The image `ref` names for `platform`, following an index (manifest list) to its entry."""
    raw, media_type, digest = get_manifest(session, ref)
    index_digest: Digest | None = None
    if mt.is_index(media_type):
        index_digest = digest
        entry = Index.from_bytes(raw, media_type).select(platform)
        ref = ref.with_digest(entry.digest)
        raw, media_type, digest = get_manifest(session, ref)
    if not mt.is_manifest(media_type):
        raise WharfieError(f"{ref}: unsupported manifest type {media_type}")
    manifest = Manifest.from_bytes(raw, media_type)
    pinned = ref.with_digest(digest)
    config_raw = fetch_small_blob(session, pinned, manifest.config, what=f"config of {pinned}")
    config = ImageConfig.from_bytes(config_raw)
    log.debug("resolved %s to %s (%s)", ref, digest, platform)
    return ResolvedImage(manifest, digest, raw, media_type, config, config_raw, pinned, index_digest)


def put_manifest(session: Session, ref: Reference, raw: bytes, media_type: str) -> Digest:
    """PUT `raw` under `ref`'s tag (or digest); returns its digest, checked against the registry's."""
    digest = Digest.of_bytes(raw)
    if ref.digest is not None and ref.digest != digest:
        raise DigestMismatchError(f"manifest for {ref}", str(ref.digest), str(digest))
    what = f"{ref} (push)"
    response = session.retry(lambda: session.call(ref, "PUT", f"manifests/{ref.identifier}", action="push",
                                                  ok=(200, 201, 202), content=raw,
                                                  headers={"Content-Type": media_type}, what=what), what=what)
    header = response.headers.get("docker-content-digest")
    if header and header != str(digest):
        raise DigestMismatchError(f"manifest pushed to {ref}", str(digest), header)
    return digest


def delete_manifest(session: Session, ref: Reference, digest: Digest) -> None:
    """DELETE ``/v2/REPO/manifests/DIGEST``: removes the manifest and every tag pointing at it."""
    what = f"{ref.repo_ref.with_digest(digest)} (delete)"
    attempts = 0

    def delete() -> None:
        nonlocal attempts
        attempts += 1
        try:
            session.call(ref, "DELETE", f"manifests/{digest}", action="delete", ok=(200, 202), what=what)
        except NotFoundError:
            if attempts == 1:
                raise
            # An earlier attempt's reply was lost after the registry deleted it: that is done.

    session.retry(delete, what=what)
