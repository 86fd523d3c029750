"""OCI 1.1 referrers: attaching an artifact (an SBOM, a provenance statement) to an image, and finding it again.

An artifact is an OCI image manifest whose `artifactType` says what it holds,
whose config is the empty descriptor `{}` and whose one layer is the payload,
and whose `subject` is the image manifest it describes. The image's own
manifest is never touched: the link goes from the artifact to the image.

Where the artifact is found depends on the registry (distribution spec 1.1):
- a registry with the referrers API indexes `subject` itself: it says so with
  an ``OCI-Subject`` header on the manifest PUT, and ``GET
  /v2/NAME/referrers/DIGEST`` answers 200 with an image index;
- any other registry (Debian's docker-registry 2.8, GitLab's today) gets the
  spec's fallback: the tag ``sha256-HEX`` holds an image index of the
  referrers, which the pusher reads, extends and writes back. Registries
  offer no compare-and-swap for it, so the write is checked by reading the
  tag again and merged again if a concurrent pusher replaced it meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from oci import mediatypes as mt
from oci.digest import Digest
from oci.errors import WharfieError
from oci.models import Descriptor, Index, Manifest
from registry.blobs import fetch_small_blob
from registry.errors import MANIFEST_UNKNOWN, NAME_UNKNOWN, RegistryError
from registry.manifests import MAX_MANIFEST_SIZE, get_manifest, put_manifest
from registry.progress import NullProgress, Progress
from registry.push import BytesBlob, push_blobs
from registry.reference import Reference
from registry.session import Session

__all__ = [
    "EMPTY_CONFIG",
    "Artifact",
    "artifact_manifest",
    "fetch_artifact",
    "list_referrers",
    "newest",
    "push_referrer",
    "referrers_api",
    "referrers_tag",
]

log = logging.getLogger(__name__)

EMPTY_CONFIG = b"{}"
_MERGE_TRIES = 3
_MAX_PAGES = 20  # referrers API pages followed through `Link` before giving up


@dataclass(frozen=True)
class Artifact:
    """What to attach: its artifact type (also the payload's media type), the payload, annotations."""

    artifact_type: str
    payload: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)


def referrers_tag(digest: Digest) -> str:
    """The fallback tag of `digest`'s referrers: ``ALGORITHM-HEX`` (truncated to a tag's 128 characters)."""
    return f"{digest.algorithm}-{digest.hex}"[:128]


def artifact_manifest(artifact: Artifact, subject: Descriptor) -> bytes:
    """The artifact's manifest bytes (OCI 1.1 guidance: empty config, payload as the only layer)."""
    manifest = Manifest(
        media_type=mt.OCI_MANIFEST,
        artifact_type=artifact.artifact_type,
        config=Descriptor(mt.OCI_EMPTY, Digest.of_bytes(EMPTY_CONFIG), len(EMPTY_CONFIG)),
        layers=(Descriptor(artifact.artifact_type, Digest.of_bytes(artifact.payload), len(artifact.payload)),),
        subject=Descriptor(subject.media_type, subject.digest, subject.size),
        annotations=dict(artifact.annotations) or None,
    )
    return manifest.to_bytes()


def push_referrer(session: Session, repo: Reference, subject: Descriptor, artifact: Artifact, *,
                  progress: Progress | None = None) -> Descriptor:
    """Push `artifact` into `repo` with `subject` as its subject; returns its manifest's descriptor.

    The referrers index is updated only where the registry does not keep one itself.
    """
    repo = repo.repo_ref
    raw = artifact_manifest(artifact, subject)
    digest = Digest.of_bytes(raw)
    descriptor = Descriptor(mt.OCI_MANIFEST, digest, len(raw), annotations=dict(artifact.annotations) or None,
                            artifact_type=artifact.artifact_type)
    push_blobs(session, repo, [BytesBlob(EMPTY_CONFIG, mt.OCI_EMPTY), BytesBlob(artifact.payload)], [],
               progress or NullProgress())
    response = session.call(repo, "PUT", f"manifests/{digest}", action="push", ok=(200, 201, 202), content=raw,
                            headers={"Content-Type": mt.OCI_MANIFEST}, what=f"{repo.with_digest(digest)} (push)")
    if response.headers.get("oci-subject") == str(subject.digest):
        log.debug("%s keeps the referrers of %s itself (OCI-Subject)", repo.registry, subject.digest.short)
        return descriptor
    if referrers_api(session, repo, subject.digest) is not None:
        log.debug("%s answers the referrers API for %s", repo.registry, subject.digest.short)
        return descriptor
    _add_to_fallback_index(session, repo, subject.digest, descriptor)
    return descriptor


def referrers_api(session: Session, repo: Reference, digest: Digest,
                  artifact_type: str | None = None) -> list[Descriptor] | None:
    """The referrers API's answer for `digest`, or None where the registry has no such API.

    Registries without it answer 404 (docker-registry: "404 page not found"), 405
    or 400, or anything that is not an image index: all of these mean "use the tag".
    """
    repo = repo.repo_ref
    path = f"referrers/{digest}"
    params = {"artifactType": artifact_type} if artifact_type else None
    found: list[Descriptor] = []
    for _page in range(_MAX_PAGES):
        response = session.call(repo, "GET", path, action="pull", ok=(200, 400, 404, 405, 406), params=params,
                                headers={"Accept": mt.OCI_INDEX}, what=f"referrers of {repo.with_digest(digest)}")
        content_type = (response.headers.get("content-type") or "").split(";")[0].strip()
        if response.status_code != 200 or content_type != mt.OCI_INDEX or len(response.content) > MAX_MANIFEST_SIZE:
            return None if not found else found
        found.extend(Index.from_bytes(response.content, mt.OCI_INDEX).manifests)
        next_url = response.links.get("next", {}).get("url")
        if not next_url:
            return found
        path, params = next_url, None  # a relative Link is resolved against the registry by Session.url
    raise RegistryError(f"referrers of {repo.with_digest(digest)}: more than {_MAX_PAGES} pages")


def _fallback_index(session: Session, repo: Reference, digest: Digest) -> Index | None:
    """The index under the referrers tag of `digest`, or None when there is no such tag."""
    tag_ref = repo.with_tag(referrers_tag(digest))
    try:
        # Accept everything: a registry asked for an index only may deny a manifest is there at all.
        raw, media_type, _ = get_manifest(session, tag_ref)
    except RegistryError as exc:
        if exc.status == 404 or exc.has_code(MANIFEST_UNKNOWN, NAME_UNKNOWN):
            return None
        raise
    if media_type != mt.OCI_INDEX:
        raise WharfieError(f"{tag_ref} holds a {media_type}, not the image index of referrers the OCI "
                           "distribution spec puts there; left alone")
    return Index.from_bytes(raw, media_type)


def _add_to_fallback_index(session: Session, repo: Reference, subject: Digest, descriptor: Descriptor) -> None:
    """Read the referrers tag, add `descriptor` (keeping every existing entry), write it back, check it stuck."""
    tag_ref = repo.with_tag(referrers_tag(subject))
    for _attempt in range(_MERGE_TRIES):
        index = _fallback_index(session, repo, subject) or Index(mt.OCI_INDEX, ())
        if any(entry.digest == descriptor.digest for entry in index.manifests):
            return
        updated = Index(mt.OCI_INDEX, (*index.manifests, descriptor), index.annotations)
        put_manifest(session, tag_ref, updated.to_bytes(), mt.OCI_INDEX)
        after = _fallback_index(session, repo, subject)
        if after is not None and any(entry.digest == descriptor.digest for entry in after.manifests):
            log.debug("referrers tag %s now lists %d artifacts", tag_ref, len(after.manifests))
            return
        log.info("referrers tag %s was replaced by another push meanwhile; merging again", tag_ref)
    raise RegistryError(f"could not add {descriptor.digest.short} to the referrers tag {tag_ref}: "
                        "it kept changing under concurrent pushes")


def list_referrers(session: Session, repo: Reference, digest: Digest,
                   artifact_type: str | None = None) -> list[Descriptor]:
    """Every artifact attached to `digest` in `repo` (of `artifact_type`, if given): the API's list, else the tag's."""
    repo = repo.repo_ref
    found = referrers_api(session, repo, digest, artifact_type)
    if found is None:
        index = _fallback_index(session, repo, digest)
        found = list(index.manifests) if index is not None else []
    # The API's filter is optional for registries, and the tag has none: filter here either way.
    return [d for d in found if artifact_type is None or d.artifact_type == artifact_type]


def fetch_artifact(session: Session, repo: Reference, descriptor: Descriptor) -> tuple[Manifest, bytes]:
    """An artifact's manifest and its payload (the single layer), both verified against their digests."""
    ref = repo.repo_ref.with_digest(descriptor.digest)
    raw, media_type, _ = get_manifest(session, ref, accept=mt.OCI_MANIFEST)
    manifest = Manifest.from_bytes(raw, media_type)
    if len(manifest.layers) != 1:
        raise WharfieError(f"{ref}: an attestation artifact has one layer, this one {len(manifest.layers)}")
    payload = fetch_small_blob(session, ref, manifest.layers[0], what=f"payload of {ref}")
    return manifest, payload


def newest(descriptors: Sequence[Descriptor]) -> Descriptor | None:
    """The most recently created of `descriptors` (by their created annotation, else the last listed)."""
    if not descriptors:
        return None
    created = "org.opencontainers.image.created"
    ranked = sorted(enumerate(descriptors), key=lambda item: ((item[1].annotations or {}).get(created, ""), item[0]))
    return ranked[-1][1]
