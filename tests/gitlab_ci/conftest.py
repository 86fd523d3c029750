"""Fixtures of the example-pipeline tests: where jobs run (runners.py), and a GitLab project per example (job_bed.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from job_bed import PROJECT_IDS, GitLabJobBed
from runners import PodmanRunner

from fixtures.gitlab_api import GitLabAPIServer
from fixtures.registry import Registry
from fixtures.wharfie_image import WharfieImage


@pytest.fixture(scope="session")
def job_runner(wharfie_image: WharfieImage) -> PodmanRunner:
    """wharfie's image under podman; skipped, with the reason, where podman or the image's base is missing."""
    return PodmanRunner(wharfie_image)


@pytest.fixture
def job_bed(registry_token: Registry, token_accounts, tmp_path: Path) -> Iterator[Callable[..., GitLabJobBed]]:
    """``job_bed("default-branch")``: the example's project, GitLab API and job variables, stopped after the test.

    ``job_bed(example, name)`` names the project otherwise, for tests running one example more than once.
    The registry's private CA (the test CA) reaches the job as a project would give it: a variable of type
    File named ``SSL_CERT_FILE``, or with ``private_ca="kaniko"`` the PEM in ``ADDITIONAL_CA_CERT_BUNDLE``,
    as GitLab's kaniko documentation has it.
    """
    servers: list[GitLabAPIServer] = []

    def make(example: str, name: str | None = None, *, private_ca: str = "file") -> GitLabJobBed:
        project_path = f"group/project/{name or example}"
        api = GitLabAPIServer(registry_token, {project_path: PROJECT_IDS[example]}).start()
        servers.append(api)
        job, reader = token_accounts["ci_job"], token_accounts["reader"]
        api.add_job_token(job.password, project_path)
        assert private_ca in ("file", "kaniko"), private_ca
        ca = registry_token.ca_file.read_text()
        bed = GitLabJobBed(example, name or example, registry_token, api, tmp_path / "builds", job.password,
                           reader.username, reader.password,
                           project_variables={"ADDITIONAL_CA_CERT_BUNDLE": ca} if private_ca == "kaniko" else {},
                           file_variables={"SSL_CERT_FILE": ca} if private_ca == "file" else {})
        bed.project_dir.mkdir(parents=True)
        return bed

    yield make
    for server in servers:
        server.stop()
