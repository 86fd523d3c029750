"""GitLab cleanup-policy semantics, decided by the pure `plan_cleanup` (a table of cases)."""

from __future__ import annotations

import datetime as dt

import pytest

from oci.digest import Digest
from oci.errors import WharfieError
from registry.cleanup import CleanupPolicy, TagInfo, _parse_created, parse_age, plan_cleanup

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
D = Digest.of_bytes(b"m")


def tag(name: str, days_old: float | None, digest: Digest | None = D) -> TagInfo:
    return TagInfo(name, digest, NOW - dt.timedelta(days=days_old) if days_old is not None else None)


TAGS = [tag("latest", 500), tag("v1", 200), tag("v2", 100), tag("v3", 10), tag("main-abc", 95), tag("main-def", 1),
        tag("stable", 300), tag("ghost", 400, digest=None), tag("nodate", None)]


def names(policy: CleanupPolicy) -> list[str]:
    return [t.name for t in plan_cleanup(TAGS, policy, NOW)]


@pytest.mark.parametrize(("policy", "expected"), [
    (CleanupPolicy(".*"), ["main-def", "v3", "main-abc", "v2", "v1", "stable", "nodate"]),  # never latest/ghost
    (CleanupPolicy("v.*"), ["v3", "v2", "v1"]),
    (CleanupPolicy("v"), []),  # whole-name match, as GitLab anchors it
    (CleanupPolicy(".*", name_regex_keep="stable|main-.*"), ["v3", "v2", "v1", "nodate"]),
    (CleanupPolicy(".*", keep_n=2), ["main-abc", "v2", "v1", "stable", "nodate"]),  # the 2 newest kept
    (CleanupPolicy(".*", older_than=dt.timedelta(days=90)), ["main-abc", "v2", "v1", "stable"]),  # no date: kept
    (CleanupPolicy("v.*|main-.*", keep_n=1, older_than=dt.timedelta(days=90), name_regex_keep="v1"),
     ["main-abc", "v2"]),
])
def test_plan(policy, expected):
    assert names(policy) == expected


def test_parse_age():
    assert parse_age("90d") == dt.timedelta(days=90)
    assert parse_age("12h") == dt.timedelta(hours=12)
    assert parse_age("2w") == dt.timedelta(weeks=2)
    assert parse_age("1month") == dt.timedelta(days=30)
    assert parse_age("5m") == dt.timedelta(minutes=5)
    with pytest.raises(WharfieError, match="invalid age"):
        parse_age("soon")


def test_bad_regex_is_a_clear_error():
    with pytest.raises(WharfieError, match="--name-regex-delete"):
        plan_cleanup(TAGS, CleanupPolicy("("), NOW)


def test_created_parsing():
    assert _parse_created("2024-01-02T03:04:05.123456789Z") == dt.datetime(2024, 1, 2, 3, 4, 5, 123456,
                                                                           tzinfo=dt.UTC)
    assert _parse_created("2024-01-02T03:04:05+02:00").utcoffset() == dt.timedelta(hours=2)
    assert _parse_created("garbage") is None and _parse_created(None) is None
