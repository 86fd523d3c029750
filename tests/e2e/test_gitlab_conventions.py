"""GitLab's destination conventions in a job, end to end against the token-auth TLS registry (issue #12).

Each build runs as a GitLab job would: GITLAB_CI=true, the job's CI_* variables,
the job token as its only credentials (``gitlab-ci-token``, push on
``group/project`` and below). What was pushed is read back from the registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.registry import Registry

SHA = "3f5e1b2c9d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"
UNSET = ("CI", "GITLAB_CI", "KANIKO_NO_PUSH", "KANIKO_DIR", "KANIKO_REGISTRY_MAP", "KANIKO_REGISTRY_MIRROR",
         "DOCKER_CONFIG")


@pytest.fixture
def project(tmp_path: Path, busybox_ref: str) -> Path:
    context = tmp_path / "project"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nCOPY app.txt /app.txt\n")
    (context / "app.txt").write_text("app\n")
    return context


def run_job(registry: Registry, token_accounts, project: Path, image: str, *args: str,
            **variables: str) -> subprocess.CompletedProcess[str]:
    job = token_accounts["ci_job"]
    env = {**{k: v for k, v in os.environ.items() if k not in UNSET},
           "GITLAB_CI": "true", "CI": "true", "CI_REGISTRY": registry.host,
           "CI_REGISTRY_IMAGE": f"{registry.host}/group/project/{image}", "CI_REGISTRY_USER": job.username,
           "CI_JOB_TOKEN": job.password, "CI_REGISTRY_PASSWORD": job.password, "CI_COMMIT_SHA": SHA,
           "CI_DEFAULT_BRANCH": "main", "CI_PIPELINE_SOURCE": "push", "CI_PROJECT_DIR": str(project),
           "DOCKER_CONFIG": str(project.parent / "no-docker-config"), **variables}
    return subprocess.run([sys.executable, "-m", "builder", "build", "--context", str(project),
                           "--registry-certificate", f"{registry.host}={registry.ca_file}",
                           "--cache-dir", str(project.parent / "cache"), *args],
                          capture_output=True, text=True, env=env, timeout=600, check=False)


def tags(registry: Registry, repository: str) -> dict[str, str]:
    """tag -> manifest digest, read with skopeo as the registry's admin."""
    flags = [f"--cert-dir={registry.cert_dir}", f"--creds={registry.username}:{registry.password}"]
    listed = subprocess.run(["skopeo", "list-tags", *flags, f"docker://{registry.host}/{repository}"],
                            capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        return {}
    out = {}
    for tag in json.loads(listed.stdout)["Tags"]:
        inspected = subprocess.run(["skopeo", "inspect", *flags, f"docker://{registry.host}/{repository}:{tag}"],
                                   capture_output=True, text=True, check=True)
        out[tag] = json.loads(inspected.stdout)["Digest"]
    return out


def test_default_branch_pushes_sha_and_latest(registry_token: Registry, token_accounts, project: Path) -> None:
    result = run_job(registry_token, token_accounts, project, "main", CI_COMMIT_BRANCH="main",
                     CI_COMMIT_REF_NAME="main", CI_COMMIT_REF_SLUG="main")
    assert result.returncode == 0, result.stderr
    pushed = tags(registry_token, "group/project/main")
    assert sorted(pushed) == sorted([SHA, "latest"]) and len(set(pushed.values())) == 1
    image = f"{registry_token.host}/group/project/main"
    lines = result.stderr.splitlines()
    said = [lines.index(f"destination {image}:{SHA}"), lines.index(f"destination {image}:latest")]
    assert lines.index("GitLab CI: default branch main") < said[0] < said[1] < lines.index("stage 0"), \
        "each destination is said before the build"
    assert token_accounts["ci_job"].password not in result.stdout + result.stderr


def test_another_branch_pushes_sha_and_slug(registry_token: Registry, token_accounts, project: Path) -> None:
    result = run_job(registry_token, token_accounts, project, "branch", CI_COMMIT_BRANCH="feature/Login",
                     CI_COMMIT_REF_NAME="feature/Login", CI_COMMIT_REF_SLUG="feature-login")
    assert result.returncode == 0, result.stderr
    assert sorted(tags(registry_token, "group/project/branch")) == sorted([SHA, "feature-login"])


@pytest.mark.parametrize(("tag", "expected"), [("v1.2.3", ["1", "1.2", "1.2.3", "latest"]),
                                               ("v2.0.0-rc.1", ["2.0.0-rc.1"]),
                                               ("nightly_2025", ["nightly-2025"])],
                         ids=["release", "pre-release", "other"])
def test_tags(registry_token: Registry, token_accounts, project: Path, tag: str, expected: list[str]) -> None:
    image = "tag-" + expected[0].replace(".", "-")
    result = run_job(registry_token, token_accounts, project, image, CI_COMMIT_TAG=tag, CI_COMMIT_REF_NAME=tag)
    assert result.returncode == 0, result.stderr
    pushed = tags(registry_token, f"group/project/{image}")
    assert sorted(pushed) == sorted(expected) and len(set(pushed.values())) == 1


def test_merge_request_builds_pushes_nothing_unless_asked(registry_token: Registry, token_accounts,
                                                          project: Path) -> None:
    variables = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "fix/x",
                 "CI_COMMIT_REF_NAME": "fix/x", "CI_COMMIT_REF_SLUG": "fix-x"}
    result = run_job(registry_token, token_accounts, project, "mr", **variables)
    assert result.returncode == 0, result.stderr
    assert "GitLab CI: merge request pipeline of fix/x: built, not pushed (--push pushes it)" in result.stderr
    assert result.stdout.startswith("built sha256:")
    assert tags(registry_token, "group/project/mr") == {}
    forced = run_job(registry_token, token_accounts, project, "mr", "--push", **variables)
    assert forced.returncode == 0, forced.stderr
    assert sorted(tags(registry_token, "group/project/mr")) == sorted([SHA, "fix-x"])


def test_image_path_names_one_of_several_images(registry_token: Registry, token_accounts, project: Path) -> None:
    result = run_job(registry_token, token_accounts, project, "multi", "--image-path", "worker",
                     CI_COMMIT_BRANCH="main")
    assert result.returncode == 0, result.stderr
    assert sorted(tags(registry_token, "group/project/multi/worker")) == sorted([SHA, "latest"])


def test_an_explicit_destination_wins(registry_token: Registry, token_accounts, project: Path) -> None:
    dest = f"{registry_token.host}/group/project/explicit:mine"
    result = run_job(registry_token, token_accounts, project, "explicit", "-d", dest, CI_COMMIT_BRANCH="main")
    assert result.returncode == 0, result.stderr
    assert list(tags(registry_token, "group/project/explicit")) == ["mine"]
    assert "GitLab CI:" not in result.stderr


def test_outside_gitlab_no_destination_stays_an_error(registry_token: Registry, token_accounts,
                                                      project: Path) -> None:
    result = run_job(registry_token, token_accounts, project, "outside", GITLAB_CI="", CI_COMMIT_BRANCH="main")
    assert result.returncode == 2
    assert "no --destination given" in result.stderr and "Traceback" not in result.stderr
    assert tags(registry_token, "group/project/outside") == {}
