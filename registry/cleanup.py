"""Cleanup with the semantics of GitLab's cleanup policies, run through the registry API.

GitLab's documented order (``How the cleanup policy works``):

1. collect every tag; 2. never the tag ``latest``; 3. keep only names fully
matching ``name_regex_delete``; 4. drop names fully matching
``name_regex_keep``; 5. drop tags without a manifest; 6. order by creation
date; 7. keep the ``keep_n`` most recent; 8. keep those newer than
``older_than``; 9. delete the rest.

The creation date is the image config's ``created`` (what GitLab shows).
`plan_cleanup` is the pure decision, tested on its own; `collect_tags` and
`run_cleanup` do the I/O.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from oci import mediatypes as mt
from oci.digest import Digest
from oci.errors import WharfieError
from oci.models import ImageConfig, Index, Manifest
from registry.blobs import fetch_small_blob
from registry.errors import MANIFEST_UNKNOWN, RegistryError
from registry.manifests import get_manifest
from registry.reference import Reference
from registry.session import Session
from registry.tags import delete_tags, list_tags

__all__ = ["CleanupPolicy", "TagInfo", "collect_tags", "parse_age", "plan_cleanup", "run_cleanup"]

log = logging.getLogger(__name__)

_AGE_RE = re.compile(r"^\s*(\d+)\s*(s|sec|secs|m|min|mins|h|hour|hours|d|day|days|w|week|weeks|month|months|y|year|years)\s*$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "month": 30 * 86400, "y": 365 * 86400}


def parse_age(text: str) -> dt.timedelta:
    """``90d``, ``14d``, ``1h``, ``2w``, ``1month``: GitLab's ``older_than`` values (``m`` is minutes)."""
    match = _AGE_RE.match(text.lower())
    if not match:
        raise WharfieError(f"invalid age {text!r}: expected a number and a unit, e.g. 90d, 12h, 2w, 1month")
    unit = match.group(2)
    key = "month" if unit.startswith("month") else unit[0]
    try:
        return dt.timedelta(seconds=int(match.group(1)) * _AGE_UNITS[key])
    except OverflowError:
        raise WharfieError(f"invalid age {text!r}: longer than {dt.timedelta.max.days} days") from None


def _compile(pattern: str | None, flag: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise WharfieError(f"invalid {flag} {pattern!r}: {exc}") from None


@dataclass(frozen=True)
class CleanupPolicy:
    name_regex_delete: str
    name_regex_keep: str | None = None
    keep_n: int | None = None
    older_than: dt.timedelta | None = None


@dataclass(frozen=True)
class TagInfo:
    name: str
    digest: Digest | None
    created: dt.datetime | None


def plan_cleanup(tags: Sequence[TagInfo], policy: CleanupPolicy, now: dt.datetime) -> list[TagInfo]:
    """The tags GitLab's policy would delete, newest first."""
    delete_re = _compile(policy.name_regex_delete, "--name-regex-delete")
    keep_re = _compile(policy.name_regex_keep, "--name-regex-keep")
    candidates = [t for t in tags if t.name != "latest"]
    candidates = [t for t in candidates if delete_re is not None and delete_re.fullmatch(t.name)]
    candidates = [t for t in candidates if not (keep_re is not None and keep_re.fullmatch(t.name))]
    candidates = [t for t in candidates if t.digest is not None]
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    candidates.sort(key=lambda t: (t.created or oldest, t.name), reverse=True)
    if policy.keep_n:
        candidates = candidates[policy.keep_n:]
    if policy.older_than is not None:
        cutoff = now - policy.older_than if policy.older_than < now - oldest else oldest  # no tag is that old
        candidates = [t for t in candidates if t.created is not None and t.created < cutoff]
    return candidates


def _parse_created(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # Go writes nanoseconds; Python takes microseconds
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _tag_info(session: Session, repo: Reference, tag: str) -> TagInfo:
    ref = repo.with_tag(tag)
    try:
        raw, media_type, digest = get_manifest(session, ref)
    except RegistryError as exc:
        if exc.has_code(MANIFEST_UNKNOWN) or exc.status == 404:
            return TagInfo(tag, None, None)
        raise
    manifest_raw, manifest_type, pinned = raw, media_type, ref.with_digest(digest)
    if mt.is_index(media_type):
        entries = Index.from_bytes(raw, media_type).manifests
        if not entries:
            return TagInfo(tag, digest, None)
        pinned = ref.with_digest(entries[0].digest)
        manifest_raw, manifest_type, _ = get_manifest(session, pinned)
    manifest = Manifest.from_bytes(manifest_raw, manifest_type)
    config = ImageConfig.from_bytes(fetch_small_blob(session, pinned, manifest.config, what=f"config of {ref}"))
    return TagInfo(tag, digest, _parse_created(config.created))


def collect_tags(session: Session, repo: Reference) -> list[TagInfo]:
    """Every tag of `repo` with its manifest digest and creation date (concurrently)."""
    names = list_tags(session, repo)
    with ThreadPoolExecutor(max_workers=max(1, session.options.push_concurrency)) as pool:
        return list(pool.map(lambda tag: _tag_info(session, repo, tag), names))


def run_cleanup(session: Session, repo: Reference, policy: CleanupPolicy, *, dry_run: bool = False,
                now: dt.datetime | None = None) -> list[TagInfo]:
    """Apply `policy` to `repo`; returns the tags deleted (or, with `dry_run`, that would be)."""
    tags = collect_tags(session, repo)
    doomed = plan_cleanup(tags, policy, now or dt.datetime.now(dt.UTC))
    if doomed and not dry_run:
        digests = {t.name: t.digest for t in tags if t.digest is not None}
        delete_tags(session, repo, [t.name for t in doomed], digests)
    return doomed
