"""Cleanup with the semantics of GitLab's cleanup policies, run through the registry API.

GitLab's documented order (``How the cleanup policy works``):

1. collect every tag; 2. never the tag ``latest``; 3. keep only names fully
matching ``name_regex_delete``; 4. drop names fully matching
``name_regex_keep``; 5. drop tags without a manifest; 6. order by creation
date; 7. keep the ``keep_n`` most recent; 8. keep those newer than
``older_than``; 9. delete the rest.

A tag's age must be a time the registry saw, never a date the build chose:
``--reproducible`` and ``SOURCE_DATE_EPOCH`` date an image's config in the
past on purpose, and an age taken from it deletes what was pushed a minute
ago. So the date comes from, best first: GitLab's API (``created_at``, see
registry/gitlab_cleanup.py); for layer-cache entries, the store time wharfie
writes on each entry's manifest (`CACHE_STORED_ANNOTATION`); on a plain
registry, the image config's ``created``, unless it is dated at or before a
fixed point builds choose (before container images existed, such as the
epoch, or at or before ``$SOURCE_DATE_EPOCH``): then ``--older-than`` keeps
the tag and says why, unless the user trusts image dates.

`make_plan` is the pure decision, tested on its own; `collect_tags`,
`collect_cache_entries` and `run_cleanup` do the I/O.
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
from registry.blobs import fetch_small_blob
from registry.decode import decode_config, decode_index, decode_manifest
from registry.errors import NotFoundError
from registry.manifests import get_manifest
from registry.reference import Reference
from registry.session import Session
from registry.tags import delete_tags, list_tags

__all__ = [
    "CACHE_STORED_ANNOTATION",
    "CleanupPlan",
    "CleanupPolicy",
    "TagInfo",
    "collect_cache_entries",
    "collect_tags",
    "date_doubt",
    "make_plan",
    "parse_age",
    "plan_cleanup",
    "run_cleanup",
]

log = logging.getLogger(__name__)

# Written by the layer cache on every entry's manifest when it stores it (RFC 3339, UTC):
# the entry's true age, whatever date the build gave its config.
CACHE_STORED_ANNOTATION = "io.wharfie.cache.stored"
_OCI_CREATED = "org.opencontainers.image.created"  # what wharfie's cache wrote at store time before the above

# No container image was built before Docker's first release (March 2013): a config dated
# earlier carries a date chosen for reproducibility (the epoch, 1980-01-01, Go's zero time).
_FIRST_IMAGES = dt.datetime(2013, 3, 1, tzinfo=dt.UTC)

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
    trust_image_dates: bool = False
    """Take a doubtful date (see `date_doubt`) as the tag's age anyway (``--trust-image-dates``)."""


@dataclass(frozen=True)
class TagInfo:
    """A tag, its manifest digest and its date; `date_source` says where the date comes from.

    `doubt`, when set, says why the date may be one the build chose rather than a
    push time: ``--older-than`` then keeps the tag unless the policy trusts image dates.
    """

    name: str
    digest: Digest | None
    created: dt.datetime | None
    date_source: str = "image config"
    doubt: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class CleanupPlan:
    """What a policy deletes (newest first), and what it keeps only because no trustworthy age is known."""

    delete: list[TagInfo]
    undated: list[TagInfo]


def date_doubt(created: dt.datetime | None, source: str, *, source_date_epoch: int | None) -> str | None:
    """Why `created` (read from `source`) is likely a date the build chose, or None if nothing says so."""
    if created is None:
        return f"no date in its {source}"
    when = created.astimezone(dt.UTC).isoformat()
    if created < _FIRST_IMAGES:
        return (f"its {source} is dated {when}, before container images existed: a date fixed for "
                "reproducible builds, not when it was pushed")
    if source_date_epoch is not None and created <= dt.datetime.fromtimestamp(source_date_epoch, dt.UTC):
        return (f"its {source} is dated {when}, at or before $SOURCE_DATE_EPOCH: a date the build may have "
                "chosen, not when it was pushed")
    return None


def make_plan(tags: Sequence[TagInfo], policy: CleanupPolicy, now: dt.datetime) -> CleanupPlan:
    """The tags GitLab's policy would delete, newest first, given each tag's trustworthy age."""
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
    if policy.older_than is None:
        return CleanupPlan(candidates, [])
    cutoff = now - policy.older_than if policy.older_than < now - oldest else oldest  # no tag is that old
    delete, undated = [], []
    for tag in candidates:
        if tag.created is not None and (tag.doubt is None or policy.trust_image_dates):
            if tag.created < cutoff:
                delete.append(tag)
        elif tag.created is None or tag.created < cutoff:
            undated.append(tag)
    return CleanupPlan(delete, undated)


def plan_cleanup(tags: Sequence[TagInfo], policy: CleanupPolicy, now: dt.datetime) -> list[TagInfo]:
    """The tags GitLab's policy would delete, newest first."""
    return make_plan(tags, policy, now).delete


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


def _tag_info(session: Session, repo: Reference, tag: str, source_date_epoch: int | None) -> TagInfo:
    ref = repo.with_tag(tag)
    try:
        raw, media_type, digest = get_manifest(session, ref)
    except NotFoundError:
        return TagInfo(tag, None, None)
    manifest_raw, manifest_type, pinned = raw, media_type, ref.with_digest(digest)
    if mt.is_index(media_type):
        entries = decode_index(raw, media_type, what=f"index of {ref}").manifests
        if not entries:
            return TagInfo(tag, digest, None, doubt="an empty index has no image config")
        pinned = ref.with_digest(entries[0].digest)
        manifest_raw, manifest_type, _ = get_manifest(session, pinned)
    manifest = decode_manifest(manifest_raw, manifest_type, what=f"manifest of {pinned}")
    config_raw = fetch_small_blob(session, pinned, manifest.config, what=f"config of {ref}")
    created = _parse_created(decode_config(config_raw, what=f"config of {ref}").created)
    return TagInfo(tag, digest, created, "image config",
                   date_doubt(created, "image config", source_date_epoch=source_date_epoch))


def collect_tags(session: Session, repo: Reference, *, source_date_epoch: int | None = None) -> list[TagInfo]:
    """Every tag of `repo` with its manifest digest and its config's date (concurrently).

    The registry records no push time, so each date says whether it is in doubt (`date_doubt`).
    """
    names = list_tags(session, repo)
    with ThreadPoolExecutor(max_workers=max(1, session.options.push_concurrency)) as pool:
        return list(pool.map(lambda tag: _tag_info(session, repo, tag, source_date_epoch), names))


def _cache_entry(session: Session, repo: Reference, tag: str) -> TagInfo:
    ref = repo.with_tag(tag)
    try:
        raw, media_type, digest = get_manifest(session, ref)
    except NotFoundError:
        return TagInfo(tag, None, None)
    annotations = {} if mt.is_index(media_type) else (
        decode_manifest(raw, media_type, what=f"manifest of {ref}").annotations or {})
    for key in (CACHE_STORED_ANNOTATION, _OCI_CREATED):
        created = _parse_created(annotations.get(key))
        if created is not None:
            return TagInfo(tag, digest, created, f"{key} annotation")
    return TagInfo(tag, digest, None, "manifest",
                   doubt=f"no {CACHE_STORED_ANNOTATION} annotation: not a cache entry stored by wharfie")


def collect_cache_entries(session: Session, repo: Reference) -> list[TagInfo]:
    """Every entry of a layer-cache repository, dated by when wharfie stored it (one manifest GET each)."""
    names = list_tags(session, repo)
    with ThreadPoolExecutor(max_workers=max(1, session.options.push_concurrency)) as pool:
        return list(pool.map(lambda tag: _cache_entry(session, repo, tag), names))


def run_cleanup(session: Session, repo: Reference, policy: CleanupPolicy, *, dry_run: bool = False,
                now: dt.datetime | None = None, cache_entries: bool = False,
                source_date_epoch: int | None = None) -> CleanupPlan:
    """Apply `policy` to `repo` through the registry API; returns the plan it carried out (or, dry, would).

    `cache_entries` dates each tag by its layer-cache store time instead of its image config.
    """
    if cache_entries:
        tags = collect_cache_entries(session, repo)
    else:
        tags = collect_tags(session, repo, source_date_epoch=source_date_epoch)
    plan = make_plan(tags, policy, now or dt.datetime.now(dt.UTC))
    if plan.delete and not dry_run:
        digests = {t.name: t.digest for t in tags if t.digest is not None}
        delete_tags(session, repo, [t.name for t in plan.delete], digests)
    return plan
