"""Fixtures of the example-pipeline tests: `wharfie` on PATH, and a GitLab project per example (job_bed.py)."""

from __future__ import annotations

import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from job_bed import PROJECT_IDS, REPO, GitLabJobBed

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


@pytest.fixture
def job_bed(registry_token: Registry, token_accounts, wharfie_on_path: Path,
            tmp_path: Path) -> Iterator[Callable[..., GitLabJobBed]]:
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
        return GitLabJobBed(example, name or example, registry_token, api, project, job.password, reader.username, reader.password,
                            wharfie_on_path, home)

    yield make
    for server in servers:
        server.stop()
