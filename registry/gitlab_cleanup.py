"""Cleanup and tag listing through GitLab's REST API: the policy of registry/cleanup.py, dated by GitLab.

GitLab's ``created_at`` is when its registry stored the tag, so it is a true
age even for an image built with ``--reproducible``. The decision is the same
pure `make_plan` the plain-registry path uses; the deletion goes, as the issue
asks, through GitLab's bulk endpoint when the policy is one GitLab computes
identically (not a dry run, RE2-compatible regexes, an ``older_than`` in hours
or days, no tag whose date is in doubt), and tag by tag otherwise: a dry run
and a real run therefore decide from the same data.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from oci.errors import WharfieError
from registry.cleanup import CleanupPlan, CleanupPolicy, TagInfo, date_doubt, make_plan
from registry.gitlab_api import GitLabAPI, GitLabAPIError, GitLabRepository

__all__ = ["GitLabCleanup", "GitLabTarget", "bulk_unfit", "find_target", "gitlab_tag_infos", "run_gitlab_cleanup"]

log = logging.getLogger(__name__)

# Python regex constructs RE2 (GitLab's engine) lacks: lookaround, backreferences, atomic groups,
# possessive quantifiers, conditionals. With one of them GitLab would refuse or read it otherwise.
_NOT_RE2 = re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=|\(\?>|[*+?}]\+|\(\?\(")
_BULK_RATE_LIMIT = re.compile(r"once an hour|already been made", re.IGNORECASE)


@dataclass(frozen=True)
class GitLabTarget:
    """A container repository found through the API: the project it belongs to and its id."""

    project: str
    repository: GitLabRepository

    def describe(self) -> str:
        return f"project {self.project}, repository {self.repository.id} ({self.repository.path})"


@dataclass(frozen=True)
class GitLabCleanup:
    plan: CleanupPlan
    method: str  # "bulk", "per tag" or "none"
    note: str | None = None  # why tag by tag


def _project_candidates(path: str) -> list[str]:
    """``a/b/c/d`` may be project ``a/b/c/d``, ``a/b/c`` or ``a/b`` (with the image name below it)."""
    parts = path.strip("/").split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 1, -1)]


def _matches(repo: GitLabRepository, path: str, host: str | None) -> bool:
    if repo.path != path:
        return False
    return host is None or not repo.location or repo.location.split("/", 1)[0] == host


def find_target(api: GitLabAPI, path: str, *, host: str | None = None, project: str | None = None,
                per_page: int | None = None) -> GitLabTarget:
    """The repository whose image path is `path` (on registry `host`, if given), in `project` or the one its path names.

    Without a project, the path's prefixes are tried longest first: GitLab answers 404 for one that is no project.
    """
    candidates = [project] if project else _project_candidates(path)
    if not candidates:
        raise WharfieError(f"{path}: not a GitLab image path (GROUP/PROJECT[/NAME]); give --project")
    for candidate in candidates:
        try:
            repositories = api.repositories(candidate, per_page=per_page)
        except GitLabAPIError as exc:
            if exc.status == 404 and not project:
                continue
            raise
        for repo in repositories:
            if _matches(repo, path, host):
                return GitLabTarget(candidate, repo)
        if project:
            known = ", ".join(sorted(r.path for r in repositories)) or "none"
            raise WharfieError(f"project {project} has no container repository {path} (its repositories: {known})")
    if api.token is None:
        raise WharfieError(f"no GitLab project holding the container repository {path} is public, and no token "
                           "was sent: give --gitlab-token or $GITLAB_TOKEN, or run in a CI job ($CI_JOB_TOKEN)")
    raise WharfieError(f"no GitLab project visible to {api.token.describe()} holds the container repository "
                       f"{path}; give --project ID or GROUP/PROJECT")


def gitlab_tag_infos(api: GitLabAPI, target: GitLabTarget, *, per_page: int | None = None) -> list[TagInfo]:
    """Every tag of the target with GitLab's digest, size and ``created_at``.

    An old GitLab without the registry's metadata database reports the image config's date as
    ``created_at``; such a date is doubted like any other (before container images existed).
    """
    out = []
    for tag in api.tags(target.project, target.repository.id, per_page=per_page):
        doubt = date_doubt(tag.created_at, "GitLab created_at", source_date_epoch=None)
        out.append(TagInfo(tag.name, tag.digest, tag.created_at, "GitLab created_at", doubt, tag.total_size))
    return out


def _gitlab_age(older_than: dt.timedelta) -> str | None:
    """``older_than`` as GitLab's bulk endpoint reads it exactly (days or hours), or None."""
    seconds = int(older_than.total_seconds())
    if seconds <= 0:
        return None
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return None


def bulk_unfit(policy: CleanupPolicy, plan: CleanupPlan) -> str | None:
    """Why GitLab's bulk endpoint would not delete exactly `plan.delete`; None when it would."""
    for flag, pattern in (("--name-regex-delete", policy.name_regex_delete), ("--name-regex-keep", policy.name_regex_keep)):
        if pattern is not None and _NOT_RE2.search(pattern):
            return f"{flag} uses a construct GitLab's RE2 engine lacks"
    if policy.older_than is not None and _gitlab_age(policy.older_than) is None:
        return "--older-than is not a whole number of hours or days, which GitLab's bulk endpoint takes"
    if plan.undated:
        return "some tags' dates are in doubt, which GitLab's bulk endpoint would use"
    return None


def _delete_each(api: GitLabAPI, target: GitLabTarget, tags: list[TagInfo]) -> None:
    for tag in tags:
        api.delete_tag(target.project, target.repository.id, tag.name)


def run_gitlab_cleanup(api: GitLabAPI, target: GitLabTarget, policy: CleanupPolicy, *, dry_run: bool = False,
                       now: dt.datetime | None = None, per_page: int | None = None) -> GitLabCleanup:
    """Apply `policy` to the target repository; returns the plan and how it was carried out."""
    plan = make_plan(gitlab_tag_infos(api, target, per_page=per_page), policy, now or dt.datetime.now(dt.UTC))
    if dry_run or not plan.delete:
        return GitLabCleanup(plan, "none")
    reason = bulk_unfit(policy, plan)
    if reason is None:
        try:
            api.bulk_delete(target.project, target.repository.id, name_regex_delete=policy.name_regex_delete,
                            name_regex_keep=policy.name_regex_keep, keep_n=policy.keep_n or None,
                            older_than=_gitlab_age(policy.older_than) if policy.older_than is not None else None)
            return GitLabCleanup(plan, "bulk")
        except GitLabAPIError as exc:
            if exc.status != 400 or not _BULK_RATE_LIMIT.search(str(exc)):
                raise
            reason = "GitLab runs the bulk endpoint at most once an hour per repository"
    log.debug("deleting tag by tag: %s", reason)
    _delete_each(api, target, plan.delete)
    return GitLabCleanup(plan, "per tag", reason)
