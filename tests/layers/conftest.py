"""Fixtures for the layers tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from oci.blobstore import BlobStore


@pytest.fixture(autouse=True)
def _umask() -> Iterator[None]:
    # Expected modes in the tests assume the common 022.
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "store")
