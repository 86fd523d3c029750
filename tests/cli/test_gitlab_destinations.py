"""GitLab's conventions for destinations, as a pure function of the job's variables (issue #12)."""

from __future__ import annotations

import logging

import click
import pytest

from builder.cli.gitlab_destinations import apply_gitlab_conventions, gitlab_destinations, ref_slug
from oci.errors import WharfieError

IMAGE = "registry.example.com/group/project"
SHA = "0123456789abcdef0123456789abcdef01234567"


def job(**variables: str) -> dict[str, str]:
    base = {"GITLAB_CI": "true", "CI": "true", "CI_REGISTRY_IMAGE": IMAGE, "CI_COMMIT_SHA": SHA,
            "CI_DEFAULT_BRANCH": "main", "CI_PIPELINE_SOURCE": "push"}
    return {**base, **variables}


def test_default_branch_pushes_the_sha_and_latest() -> None:
    targets = gitlab_destinations(job(CI_COMMIT_BRANCH="main", CI_COMMIT_REF_NAME="main", CI_COMMIT_REF_SLUG="main"))
    assert targets.destinations == (f"{IMAGE}:{SHA}", f"{IMAGE}:latest")
    assert targets.push and targets.why == "default branch main"


def test_another_branch_pushes_the_sha_and_the_ref_slug() -> None:
    targets = gitlab_destinations(job(CI_COMMIT_BRANCH="feature/Login-42", CI_COMMIT_REF_NAME="feature/Login-42",
                                      CI_COMMIT_REF_SLUG="feature-login-42"))
    assert targets.destinations == (f"{IMAGE}:{SHA}", f"{IMAGE}:feature-login-42")
    assert targets.push


def test_the_slug_is_computed_when_the_job_lacks_it() -> None:
    targets = gitlab_destinations(job(CI_COMMIT_BRANCH="Feature/Ünïcode__X"))
    assert targets.destinations[1] == f"{IMAGE}:feature--n-code--x"


@pytest.mark.parametrize(("tag", "tags"), [
    ("v1.2.3", ["1.2.3", "1.2", "1", "latest"]),
    ("1.2.3", ["1.2.3", "1.2", "1", "latest"]),
    ("v10.0.12", ["10.0.12", "10.0", "10", "latest"]),
    ("v0.1.0", ["0.1.0", "0.1", "0", "latest"]),
    ("v2.0.0-rc.1", ["2.0.0-rc.1"]),
    ("2.0.0-alpha", ["2.0.0-alpha"]),
    ("v1.2.3-0.3.7", ["1.2.3-0.3.7"]),
])
def test_semantic_version_tags(tag: str, tags: list[str]) -> None:
    targets = gitlab_destinations(job(CI_COMMIT_TAG=tag, CI_COMMIT_REF_NAME=tag))
    assert targets.destinations == tuple(f"{IMAGE}:{t}" for t in tags)
    assert targets.push


@pytest.mark.parametrize(("tag", "slug"), [
    ("release-2024", "release-2024"),
    ("v1.2", "v1-2"),  # not X.Y.Z
    ("vv1.2.3", "vv1-2-3"),  # only one v is stripped, as ${CI_COMMIT_TAG#v}
    ("V1.2.3", "v1-2-3"),  # an upper-case V is not stripped
    ("v01.2.3", "v01-2-3"),  # semver has no leading zeros
    ("v1.2.3+build.5", "v1-2-3-build-5"),  # '+' fits no image tag
])
def test_other_tags_use_their_slug(tag: str, slug: str) -> None:
    targets = gitlab_destinations(job(CI_COMMIT_TAG=tag, CI_COMMIT_REF_NAME=tag))
    assert targets.destinations == (f"{IMAGE}:{slug}",)
    assert "not a semantic version" in targets.why


def test_the_jobs_own_slug_is_preferred() -> None:
    targets = gitlab_destinations(job(CI_COMMIT_TAG="Release_X", CI_COMMIT_REF_SLUG="release-x"))
    assert targets.destinations == (f"{IMAGE}:release-x",)


def test_merge_request_pipelines_build_without_pushing_unless_asked() -> None:
    variables = job(CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="fix/bug",
                    CI_COMMIT_REF_NAME="fix/bug", CI_COMMIT_REF_SLUG="fix-bug")
    targets = gitlab_destinations(variables)
    assert targets.destinations == (f"{IMAGE}:{SHA}", f"{IMAGE}:fix-bug") and not targets.push
    assert "merge request pipeline of fix/bug: built, not pushed (--push pushes it)" == targets.why
    forced = gitlab_destinations(variables, push=True)
    assert forced.destinations == targets.destinations and forced.push


def test_a_merge_request_from_the_default_branch_is_still_a_merge_request() -> None:
    targets = gitlab_destinations(job(CI_PIPELINE_SOURCE="merge_request_event", CI_COMMIT_BRANCH="main",
                                      CI_COMMIT_REF_SLUG="main"))
    assert not targets.push and f"{IMAGE}:latest" not in targets.destinations


def test_image_path_puts_the_image_below_the_project() -> None:
    targets = gitlab_destinations(job(CI_COMMIT_BRANCH="main"), image_path="tools/runner")
    assert targets.destinations == (f"{IMAGE}/tools/runner:{SHA}", f"{IMAGE}/tools/runner:latest")
    tagged = gitlab_destinations(job(CI_COMMIT_TAG="v3.1.4"), image_path="api")
    assert tagged.destinations[0] == f"{IMAGE}/api:3.1.4"


@pytest.mark.parametrize("path", ["api:1", "api@sha256:00", "../other", "Api", "a//b", "-x"])
def test_bad_image_paths_are_refused(path: str) -> None:
    with pytest.raises(WharfieError, match="image-path|invalid"):
        gitlab_destinations(job(CI_COMMIT_BRANCH="main"), image_path=path)


@pytest.mark.parametrize("missing", ["CI_REGISTRY_IMAGE", "CI_COMMIT_SHA"])
def test_missing_variables_are_named(missing: str) -> None:
    variables = job(CI_COMMIT_BRANCH="main")
    del variables[missing]
    with pytest.raises(WharfieError, match=rf"\${missing}"):
        gitlab_destinations(variables)


def test_a_pipeline_without_a_branch_pushes_the_sha() -> None:
    assert gitlab_destinations(job()).destinations == (f"{IMAGE}:{SHA}",)


@pytest.mark.parametrize(("name", "slug"), [("main", "main"), ("Feature/ABC_1", "feature-abc-1"), ("--x--", "x"),
                                            ("a" * 70, "a" * 63), ("-" + "b" * 62 + "-c", "b" * 62)])
def test_ref_slug_as_gitlab_computes_it(name: str, slug: str) -> None:
    assert ref_slug(name) == slug


def test_explicit_flags_always_win(caplog: pytest.LogCaptureFixture) -> None:
    variables = job(CI_COMMIT_BRANCH="main")
    assert apply_gitlab_conventions(("reg.example/x:1",), no_push=False, push=False, image_path=None,
                                    environ=variables) == (("reg.example/x:1",), False)
    caplog.set_level(logging.INFO, logger="wharfie")
    destinations, no_push = apply_gitlab_conventions((), no_push=True, push=False, image_path=None, environ=variables)
    assert destinations == (f"{IMAGE}:{SHA}", f"{IMAGE}:latest") and no_push
    assert f"destination {IMAGE}:latest (not pushed)" in caplog.text and "--no-push: nothing is pushed" in caplog.text
    with pytest.raises(click.UsageError, match="contradict"):
        apply_gitlab_conventions((), no_push=True, push=True, image_path=None, environ=variables)


def test_each_chosen_destination_is_said(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wharfie")
    _destinations, no_push = apply_gitlab_conventions((), no_push=False, push=False, image_path=None,
                                                     environ=job(CI_COMMIT_TAG="v1.4.0"))
    assert not no_push
    assert caplog.messages == ["GitLab CI: tag v1.4.0 (release 1.4.0)", f"destination {IMAGE}:1.4.0",
                               f"destination {IMAGE}:1.4", f"destination {IMAGE}:1", f"destination {IMAGE}:latest"]


def test_outside_gitlab_nothing_changes() -> None:
    outside = {"CI_REGISTRY_IMAGE": IMAGE, "CI_COMMIT_SHA": SHA}  # variables, but no GITLAB_CI=true
    assert apply_gitlab_conventions((), no_push=False, push=False, image_path=None, environ=outside) == ((), False)
    with pytest.raises(click.UsageError, match="needs a GitLab CI job"):
        apply_gitlab_conventions((), no_push=False, push=False, image_path="api", environ=outside)
