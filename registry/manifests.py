"""Manifests: fetch with the full Accept list, verify, resolve an index to a platform, put, delete.

A manifest is small and is needed whole (to parse it and to hash it), so it is
read into memory, up to `MAX_MANIFEST_SIZE` (registry/limits.py), and parsed by
registry/decode.py, so a malformed one is an error naming its reference.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from oci import mediatypes as mt
from oci.digest import Digest
from oci.errors import DigestMismatchError, WharfieError
from oci.models import Descriptor, ImageConfig, Manifest, Platform
from registry.blobs import fetch_small_blob
from registry.decode import decode_config, decode_index, decode_manifest, load_json, read_limited
from registry.errors import InvalidResponseError, LimitExceededError, NotFoundError, RegistryError
from registry.limits import MAX_MANIFEST_SIZE
from registry.reference import Reference
from registry.session import Session

__all__ = [
    "MAX_MANIFEST_SIZE",  # re-exported from registry/limits.py, where every limit is
    "ResolvedImage",
    "delete_manifest",
    "get_manifest",
    "head_manifest",
    "put_manifest",
    "resolve_image",
]

log = logging.getLogger(__name__)

# RFC 6838's type/subtype: what a media type may look like before it is named in a message.
_MEDIA_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


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


def _media_type(content_type: str | None, raw: bytes, what: str) -> str:
    """The manifest's media type: the Content-Type, unless generic, else the body's ``mediaType``."""
    value: object = (content_type or "").split(";")[0].strip()
    if not value or value in ("application/json", "text/plain", "application/octet-stream"):
        try:
            body = load_json(raw, what=what)
        except RegistryError:
            body = None  # parsing it properly later reports what is wrong with it
        value = (body.get("mediaType") if isinstance(body, dict) else None) or mt.OCI_MANIFEST
    if not isinstance(value, str) or not _MEDIA_TYPE_RE.fullmatch(value):
        raise InvalidResponseError(f"{what}: invalid media type {str(value)[:80]!r}")
    return value


def get_manifest(session: Session, ref: Reference, accept: str = mt.MANIFEST_ACCEPT) -> tuple[bytes, str, Digest]:
    """GET a manifest: returns (raw bytes, media type, digest); verifies the digest when `ref` names one."""
    what = f"{ref} (pull)"

    def fetch() -> tuple[bytes, str | None, str | None]:
        with session.stream(ref, "GET", f"manifests/{ref.identifier}", action="pull", headers={"Accept": accept},
                            what=what) as response:
            raw = read_limited(response, MAX_MANIFEST_SIZE, limit_name="manifest size", what=f"manifest of {ref}")
            return raw, response.headers.get("content-type"), response.headers.get("docker-content-digest")

    raw, content_type, header_digest = session.retry(fetch, what=what)
    digest = Digest.of_bytes(raw)
    if ref.digest is not None and digest != ref.digest:
        raise DigestMismatchError(f"manifest {ref}", str(ref.digest), str(digest))
    if header_digest and header_digest != str(digest):
        log.warning("%s: the registry says the manifest is %s but its bytes hash to %s", ref,
                    header_digest[:80], digest)
    return raw, _media_type(content_type, raw, f"manifest of {ref}"), digest


def head_manifest(session: Session, ref: Reference, accept: str = mt.MANIFEST_ACCEPT) -> Descriptor:
    """HEAD a manifest: its descriptor (digest from ``Docker-Content-Digest``), without the body."""
    what = f"{ref} (pull)"
    response = session.retry(lambda: session.call(ref, "HEAD", f"manifests/{ref.identifier}", action="pull",
                                                  headers={"Accept": accept}, what=what), what=what)
    header = response.headers.get("docker-content-digest")
    length = response.headers.get("content-length", "")
    if not header or not length.isdigit():
        raw, media_type, digest = get_manifest(session, ref, accept)
        return Descriptor(media_type, digest, len(raw))
    try:
        digest = Digest.parse(header)
    except WharfieError as exc:
        raise InvalidResponseError(f"manifest of {ref}: Docker-Content-Digest: {exc}") from None
    return Descriptor(_media_type(response.headers.get("content-type"), b"{}", f"manifest of {ref}"), digest,
                      int(length))


def resolve_image(session: Session, ref: Reference, platform: Platform) -> ResolvedImage:
    """The image `ref` names for `platform`, following an index (manifest list) to its entry."""
    raw, media_type, digest = get_manifest(session, ref)
    index_digest: Digest | None = None
    if mt.is_index(media_type):
        index_digest = digest
        index = decode_index(raw, media_type, what=f"index of {ref}")
        try:
            entry = index.select(platform)
        except WharfieError as exc:
            raise WharfieError(f"{ref}: {exc}") from None
        if entry.size > MAX_MANIFEST_SIZE:
            raise LimitExceededError(f"index of {ref} names a manifest of {entry.size} bytes, more than "
                                     f"{MAX_MANIFEST_SIZE} (limit: manifest size)", limit="manifest size")
        ref = ref.with_digest(entry.digest)
        raw, media_type, digest = get_manifest(session, ref)
        if len(raw) != entry.size:
            raise InvalidResponseError(f"index of {ref.repo_ref} says manifest {entry.digest.short} is "
                                       f"{entry.size} bytes, the registry sent {len(raw)}")
    if not mt.is_manifest(media_type):
        raise InvalidResponseError(f"{ref}: unsupported manifest type {media_type}")
    manifest = decode_manifest(raw, media_type, what=f"manifest of {ref}")
    pinned = ref.with_digest(digest)
    config_raw = fetch_small_blob(session, pinned, manifest.config, what=f"config of {pinned}")
    config = decode_config(config_raw, what=f"config of {pinned}")
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
