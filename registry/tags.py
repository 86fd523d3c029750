"""Tags: list them (following ``Link`` pagination) and delete one without taking its neighbours along.

The distribution API deletes manifests, not tags: ``DELETE /manifests/DIGEST``
removes every tag pointing at that digest. So a tag whose digest no other tag
shares is deleted that way, as the issue asks; a tag sharing its digest is
first re-pointed at a tiny manifest of its own, which is then deleted: the
method GitLab itself uses on registries without a tag-delete endpoint.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from oci import mediatypes as mt
from oci.digest import Digest
from oci.errors import WharfieError
from oci.models import Descriptor, ImageConfig, Manifest
from registry.decode import load_json, read_limited
from registry.errors import MANIFEST_UNKNOWN, ErrorDetail, InvalidResponseError, LimitExceededError, NotFoundError
from registry.limits import MAX_LISTING_SIZE
from registry.manifests import delete_manifest, head_manifest, put_manifest
from registry.progress import NullProgress
from registry.push import BytesBlob, push_blobs
from registry.reference import Reference
from registry.session import Session

__all__ = ["delete_tag", "delete_tags", "list_tags", "tag_digests"]

log = logging.getLogger(__name__)

_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)  # distribution's tag grammar
_MAX_PAGES = 10_000


def list_tags(session: Session, repo: Reference, *, page_size: int | None = None) -> list[str]:
    """Every tag of `repo`, following ``Link: <...>; rel="next"`` across pages."""
    path = "tags/list"
    params: dict[str, str] | None = {"n": str(page_size)} if page_size else None
    tags: list[str] = []
    what = f"tags of {repo.context('pull')}"
    for _ in range(_MAX_PAGES):
        page, link = session.retry(functools.partial(_page, session, repo, path, params, what), what=what)
        tags.extend(page)
        match = _LINK_RE.search(link)
        if not match:
            return tags
        path, params = match.group(1), None  # the link carries n= and last= itself
    raise LimitExceededError(f"tags of {repo.name}: more than {_MAX_PAGES} pages (limit: tag list pages)",
                             limit="tag list pages")


def _page(session: Session, repo: Reference, path: str, params: dict[str, str] | None,
          what: str) -> tuple[list[str], str]:
    """One page of tags, checked (an array of valid tag names), and its ``Link`` header."""
    with session.stream(repo, "GET", path, action="pull", params=params, what=what) as response:
        raw = read_limited(response, MAX_LISTING_SIZE, limit_name="listing size", what=f"tags of {repo.name}")
        link = response.headers.get("link", "")
    body = load_json(raw, what=f"tags of {repo.name}")
    tags = body.get("tags") if isinstance(body, dict) else None
    if tags is None and isinstance(body, dict):
        tags = []  # distribution sends null for a repository without tags
    if not isinstance(tags, list) or not all(isinstance(t, str) and _TAG_RE.fullmatch(t) for t in tags):
        raise InvalidResponseError(f"tags of {repo.name}: not an array of tag names")
    return tags, link


def tag_digests(session: Session, repo: Reference, tags: Iterable[str]) -> dict[str, Digest]:
    """tag -> manifest digest, by concurrent HEADs."""
    tags = list(tags)

    def one(tag: str) -> Digest:
        return head_manifest(session, repo.with_tag(tag)).digest

    with ThreadPoolExecutor(max_workers=max(1, session.options.push_concurrency)) as pool:
        return dict(zip(tags, pool.map(one, tags)))


def _untag(session: Session, ref: Reference) -> None:
    """Point `ref`'s tag at a manifest of its own, then delete that manifest: only this tag goes."""
    assert ref.tag is not None
    config = ImageConfig(architecture="", os="", extra={"wharfie.untag": f"{ref.tag} {time.time_ns()}"})
    config_blob = BytesBlob(config.to_bytes())
    push_blobs(session, ref.repo_ref, [config_blob], [], NullProgress())
    manifest = Manifest(mt.OCI_MANIFEST, Descriptor(mt.OCI_CONFIG, config_blob.digest, config_blob.size), ())
    digest = put_manifest(session, ref, manifest.to_bytes(), mt.OCI_MANIFEST)
    delete_manifest(session, ref, digest)


def delete_tags(session: Session, repo: Reference, doomed: Sequence[str], digests: dict[str, Digest]) -> None:
    """Delete the tags `doomed`, given every tag's digest in the repository (`tag_digests`)."""
    by_digest: dict[Digest, set[str]] = {}
    for tag, digest in digests.items():
        by_digest.setdefault(digest, set()).add(tag)
    deleted: set[Digest] = set()
    for tag in doomed:
        digest = digests[tag]
        if by_digest[digest] <= set(doomed):
            if digest not in deleted:
                delete_manifest(session, repo.with_tag(tag), digest)
                deleted.add(digest)
        else:
            log.debug("%s:%s shares %s with %s: untagging only", repo.name, tag, digest.short,
                      ", ".join(sorted(by_digest[digest] - set(doomed))))
            _untag(session, repo.with_tag(tag))


def delete_tag(session: Session, ref: Reference) -> Digest:
    """Delete `ref`'s tag (only it: other tags of the same manifest stay); returns the digest it named."""
    if not ref.tag or ref.digest is not None:
        raise WharfieError(f"{ref}: name a tag to delete (REPO:TAG)")
    repo = ref.repo_ref
    digests = tag_digests(session, repo, list_tags(session, repo))
    if ref.tag not in digests:
        raise NotFoundError(f"tag {ref.tag} not found in {repo.name}", status=404,
                            errors=(ErrorDetail(MANIFEST_UNKNOWN, f"tag {ref.tag} not found"),))
    delete_tags(session, repo, [ref.tag], digests)
    return digests[ref.tag]
