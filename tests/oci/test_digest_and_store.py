"""The shared core: digests, verified reads, the content-addressed store, models."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from oci.blobstore import BlobStore
from oci.digest import Digest, VerifyingReader, sha256_stream
from oci.errors import DigestMismatchError, WharfieError
from oci.models import Index


@pytest.mark.parametrize("text", ["sha256:abc", "md5:" + "0" * 32, "sha256:" + "A" * 64, "nocolon", ""])
def test_bad_digests_are_refused(text: str) -> None:
    with pytest.raises(WharfieError):
        Digest.parse(text)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_verifying_reader_uses_the_digest_algorithm(algorithm: str) -> None:
    data = b"some blob" * 1000
    good = Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
    reader = VerifyingReader(io.BytesIO(data), good, size=len(data))
    while reader.read(4096):
        pass
    bad = VerifyingReader(io.BytesIO(data[:-1] + b"!"), good)
    with pytest.raises(DigestMismatchError):
        while bad.read(4096):
            pass


def test_store_never_shows_a_partial_or_wrong_blob(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = b"payload"
    digest, size = store.ingest(io.BytesIO(data))
    assert (digest, size) == (sha256_stream(io.BytesIO(data)))
    assert store.path(digest).read_bytes() == data
    wrong = Digest.of_bytes(b"something else")
    with pytest.raises(DigestMismatchError):
        store.ingest(io.BytesIO(data), wrong)
    assert not store.has(wrong)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_index_needs_schema_version_2() -> None:
    with pytest.raises(WharfieError, match="schemaVersion"):
        Index.from_bytes(b'{"schemaVersion": 1, "manifests": []}')
