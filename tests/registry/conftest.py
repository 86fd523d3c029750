"""Fixtures for the registry tests: a blob store and clients configured for a fixture registry.

The registries, the token issuer and the fault proxy come from the session
fixtures in tests/conftest.py; nothing here models a registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_helpers import options_for

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


