"""GitLab's conventions for where a job's image goes, when the job names no --destination.

`gitlab_destinations` is a pure function of the job's CI_* variables:

- the default branch: ``$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA`` and ``:latest``;
- another branch: ``:$CI_COMMIT_SHA`` and ``:$CI_COMMIT_REF_SLUG``;
- a tag ``vX.Y.Z`` or ``X.Y.Z`` (the ``v`` stripped as ``${CI_COMMIT_TAG#v}``
  does): ``:X.Y.Z``, ``:X.Y``, ``:X`` and ``:latest``; a pre-release
  (``v2.0.0-rc.1``) only ``:2.0.0-rc.1``; any other tag its slug;
- a merge-request pipeline (``CI_PIPELINE_SOURCE=merge_request_event``) builds
  the branch's destinations and pushes nothing, unless ``--push``;
- ``--image-path NAME`` puts the image at ``$CI_REGISTRY_IMAGE/NAME``.

`apply_gitlab_conventions` is the CLI's use of it: an explicit --destination
always wins, and outside a GitLab job nothing changes (no destination stays an
error). Versions follow semver 2.0.0's grammar; one with build metadata
(``1.2.3+build``, a ``+`` no image tag may hold) counts as another tag.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

from oci.errors import WharfieError
from registry.reference import parse_reference

__all__ = ["GitLabTargets", "apply_gitlab_conventions", "gitlab_destinations", "gitlab_options", "ref_slug"]

log = logging.getLogger("wharfie")

_NUMBER = r"(?:0|[1-9]\d*)"
_PRERELEASE_PART = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = re.compile(rf"({_NUMBER})\.({_NUMBER})\.({_NUMBER})(?:-({_PRERELEASE_PART}(?:\.{_PRERELEASE_PART})*))?")


@dataclass(frozen=True)
class GitLabTargets:
    destinations: tuple[str, ...]
    push: bool
    why: str  # one line: which pipeline this is and what that means


def ref_slug(ref_name: str) -> str:
    """GitLab's CI_COMMIT_REF_SLUG: lowercased, anything but a-z and 0-9 a '-', at most 63 bytes, no '-' at the ends."""
    slug = re.sub(r"[^a-z0-9]", "-", ref_name.lower())[:63]
    return slug.strip("-")


def _need(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise WharfieError(f"GitLab CI job without ${name}: name the image with --destination")
    return value


def _image(environ: Mapping[str, str], image_path: str | None) -> str:
    image = _need(environ, "CI_REGISTRY_IMAGE")
    if not image_path:
        return image
    path = image_path.strip("/")
    if not path or ":" in path or "@" in path or ".." in path.split("/"):
        raise WharfieError(f"--image-path {image_path!r}: give a repository path below $CI_REGISTRY_IMAGE, "
                           "such as 'api' or 'tools/runner', without tag or digest")
    named = parse_reference(f"{image}/{path}")  # lowercase components, valid separators: docker's grammar
    return named.name


def _tag_targets(tag: str, environ: Mapping[str, str]) -> tuple[list[str], str]:
    version = tag.removeprefix("v")
    match = _SEMVER.fullmatch(version)
    if match is None:
        slug = environ.get("CI_COMMIT_REF_SLUG") or ref_slug(tag)
        return [slug], f"tag {tag} (not a semantic version: its slug)"
    if match.group(4) is not None:
        return [version], f"tag {tag} (a pre-release: only its full version)"
    major, minor, _patch = match.group(1, 2, 3)
    return [version, f"{major}.{minor}", major, "latest"], f"tag {tag} (release {version})"


def gitlab_destinations(environ: Mapping[str, str], *, image_path: str | None = None,
                        push: bool = False) -> GitLabTargets:
    """Where a GitLab job's image goes by convention; `push` is --push (a merge request's build is pushed too)."""
    image = _image(environ, image_path)
    tag = environ.get("CI_COMMIT_TAG", "")
    if tag:
        tags, why = _tag_targets(tag, environ)
        return GitLabTargets(tuple(f"{image}:{t}" for t in tags), True, why)
    sha = _need(environ, "CI_COMMIT_SHA")
    branch = environ.get("CI_COMMIT_BRANCH", "")
    merge_request = environ.get("CI_PIPELINE_SOURCE") == "merge_request_event"
    if branch and branch == environ.get("CI_DEFAULT_BRANCH") and not merge_request:
        return GitLabTargets((f"{image}:{sha}", f"{image}:latest"), True, f"default branch {branch}")
    ref = branch or environ.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or environ.get("CI_COMMIT_REF_NAME", "")
    slug = environ.get("CI_COMMIT_REF_SLUG") or ref_slug(ref)
    tags = [sha, *([slug] if slug and slug != sha else [])]
    destinations = tuple(f"{image}:{t}" for t in tags)
    if merge_request:
        if push:
            return GitLabTargets(destinations, True, f"merge request pipeline of {ref or '?'} (pushed: --push)")
        return GitLabTargets(destinations, False, f"merge request pipeline of {ref or '?'}: built, not pushed "
                             "(--push pushes it)")
    return GitLabTargets(destinations, True, f"branch {ref}" if ref else "commit")


def apply_gitlab_conventions(destinations: Sequence[str], *, no_push: bool, push: bool, image_path: str | None,
                             environ: Mapping[str, str]) -> tuple[tuple[str, ...], bool]:
    """(destinations, no_push) for the build: GitLab's conventions in a job that names no --destination.

    Explicit flags win: --destination replaces the conventions, --no-push and --push decide the push.
    """
    if push and no_push:
        raise click.UsageError("--push and --no-push contradict each other")
    if destinations:
        if image_path:
            log.warning("warning: --image-path is ignored: --destination names the image")
        return tuple(destinations), no_push
    if environ.get("GITLAB_CI") != "true":
        if image_path:
            raise click.UsageError("--image-path names a repository below $CI_REGISTRY_IMAGE: it needs a GitLab CI "
                                   "job; elsewhere pass --destination")
        return (), no_push
    targets = gitlab_destinations(environ, image_path=image_path, push=push)
    pushing = targets.push and not no_push
    log.info("GitLab CI: %s", targets.why if not no_push else f"{targets.why}; --no-push: nothing is pushed")
    for destination in targets.destinations:
        log.info("destination %s%s", destination, "" if pushing else " (not pushed)")
    return targets.destinations, not pushing


def gitlab_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--push` and `--image-path`: the two flags of GitLab's conventions (see `apply_gitlab_conventions`)."""
    command = click.option("--image-path", metavar="NAME",
                           help="In GitLab CI with no --destination: push to $CI_REGISTRY_IMAGE/NAME "
                           "(several images per project).")(command)
    return click.option("--push", "force_push", is_flag=True,
                        help="Push even in a GitLab merge-request pipeline, which otherwise only builds.")(command)
