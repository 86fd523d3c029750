"""Fixtures for the registry tests: a blob store, clients configured for a fixture registry, fuzz profiles.

The registries, the token issuer and the fault proxy come from the session
fixtures in tests/conftest.py; GitLab's API is served in front of the real
registry by fixtures/gitlab_api.py, and the fuzz tests' hostile registry is
fixtures/scripted_registry.py.

Hypothesis profiles (fuzzing.py, imported here so that they exist when
Hypothesis's plugin reads ``--hypothesis-profile``): CI runs each fuzz test with a fixed
seed and a small example count; ``--hypothesis-profile=long`` (when
tests/registry is on the command line) or ``WHARFIE_FUZZ=long`` runs long
campaigns. A failure found there is kept as an ``@example`` of its test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fuzzing  # noqa: F401 - registers the "long" profile before pytest loads it
import pytest
from registry_helpers import options_for

from fixtures.gitlab_api import GitLabAPIServer
from fixtures.registry import Registry
from oci.blobstore import BlobStore
from registry.client import RegistryClient


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "store")


@pytest.fixture
def make_client() -> Iterator[Callable[..., RegistryClient]]:
    """``make_client(registry, **option_overrides)``: a client for a fixture registry, closed after the test."""
    clients: list[RegistryClient] = []

    def make(registry: Registry, **kwargs: Any) -> RegistryClient:
        client = RegistryClient(options_for(registry, **kwargs))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()




@pytest.fixture(autouse=True)
def _no_gitlab_api_from_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run inside a GitLab job must not reach that GitLab: each test sets these itself."""
    for name in ("CI_API_V4_URL", "CI_PROJECT_ID", "GITLAB_TOKEN", "CI_JOB_TOKEN", "SOURCE_DATE_EPOCH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def gitlab_api(registry_open: Registry) -> Iterator[Callable[[dict[str, int]], GitLabAPIServer]]:
    """``gitlab_api({"group/project": 42})``: GitLab's REST API in front of ``registry_open``, stopped after the test.

    Each test names projects of its own: the API lists every repository under a project's path.
    """
    servers: list[GitLabAPIServer] = []

    def start(projects: dict[str, int]) -> GitLabAPIServer:
        server = GitLabAPIServer(registry_open, projects).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
