"""Fixtures of the example-pipeline tests: where jobs run (runners.py), and a GitLab project per example (job_bed.py)."""

from __future__ import annotations

import stat
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from job_bed import PROJECT_IDS, REPO, GitLabJobBed
from runners import HostRunner, JobRunner, PodmanRunner

from fixtures.gitlab_api import GitLabAPIServer
from fixtures.registry import Registry


@pytest.fixture(scope="session")
def wharfie_on_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose `wharfie` runs this checkout's CLI with this interpreter."""
    directory = tmp_path_factory.mktemp("bin")
    shim = directory / "wharfie"
    shim.write_text(f"#!/bin/sh\nPYTHONPATH='{REPO}' exec '{sys.executable}' -m builder \"$@\"\n")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return directory


@pytest.fixture(scope="session")
def job_runner(request: pytest.FixtureRequest, wharfie_on_path: Path) -> JobRunner:
    """wharfie's image under podman when the session can build it (fixture `wharfie_image`), else this host."""
    try:
        image = request.getfixturevalue("wharfie_image")
    except pytest.FixtureLookupError:
        warnings.warn("tests/gitlab_ci: no `wharfie_image` fixture visible here (tests/image/conftest.py defines it "
                      "for tests/image only): the example jobs run on the host with this checkout's wharfie",
                      stacklevel=1)
        return HostRunner(wharfie_on_path)
    return PodmanRunner(image)


@pytest.fixture
def job_bed(registry_token: Registry, token_accounts, tmp_path: Path) -> Iterator[Callable[..., GitLabJobBed]]:
    """``job_bed("default-branch")``: the example's project, GitLab API and job variables, stopped after the test.

    ``job_bed(example, name)`` names the project otherwise, for tests running one example more than once.
    """
    servers: list[GitLabAPIServer] = []

    def make(example: str, name: str | None = None) -> GitLabJobBed:
        project_path = f"group/project/{name or example}"
        api = GitLabAPIServer(registry_token, {project_path: PROJECT_IDS[example]}).start()
        servers.append(api)
        job, reader = token_accounts["ci_job"], token_accounts["reader"]
        api.add_job_token(job.password, project_path)
        project = tmp_path / "project"
        project.mkdir()
        home = tmp_path / "home"
        home.mkdir()
        return GitLabJobBed(example, name or example, registry_token, api, project, job.password, reader.username,
                            reader.password, home)

    yield make
    for server in servers:
        server.stop()
