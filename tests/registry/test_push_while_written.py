"""A large layer goes up while it is written: chunk by chunk as the blob store's file grows, closed with
its digest at the end, and the ordinary push takes over whenever the stream cannot finish.

The fault proxy counts what reaches the real registry; a `GrowingBlob` that tells when the uploader first
read from it proves the upload began before the blob was complete.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from registry_helpers import options_for

from fixtures.proxy import FaultProxy
from fixtures.registry import Registry
from oci.blobstore import BlobStore
from oci.growing_blob import BlobWriteFailed, GrowingBlob
from oci.layer import StoredLayer
from oci.mediatypes import OCI_LAYER_GZIP
from oci.models import Descriptor
from registry.client import RegistryClient
from registry.options import RegistryOptions
from registry.pusher import BlobPusher
from registry.reference import Reference, parse_reference
from registry.upload import upload_growing

CHUNK = 128 << 10  # small, so a 1 MiB blob goes up in several chunks
PIECE = 64 << 10


class _Watched(GrowingBlob):
    """Tells when the uploader first reads from the blob."""

    def __init__(self) -> None:
        super().__init__()
        self.first_read = threading.Event()

    def read(self, offset: int, length: int) -> bytes:
        self.first_read.set()
        return super().read(offset, length)


def _write(store: BlobStore, data: bytes, growing: GrowingBlob, *, pause_after: int | None = None,
           resume: threading.Event | None = None, fail_after: int | None = None) -> StoredLayer:
    """Write `data` into `store` piece by piece; optionally wait for `resume` after `pause_after` bytes."""
    with store.writer(growing=growing) as writer:
        for offset in range(0, len(data), PIECE):
            if fail_after is not None and offset >= fail_after:
                raise OSError(28, "No space left on device")
            writer.write(data[offset:offset + PIECE])
            if pause_after is not None and resume is not None and offset + PIECE == pause_after:
                assert resume.wait(60), "the uploader never read from the growing blob"
    return StoredLayer(Descriptor(OCI_LAYER_GZIP, writer.digest, writer.size), writer.digest, store)


def _stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "push-stream"]


@dataclass
class _Bed:
    """The real registry behind the fault proxy, and options that reach it with small upload chunks."""

    registry: Registry
    proxy: FaultProxy
    options: RegistryOptions

    def repo(self, name: str) -> Reference:
        return parse_reference(f"{self.proxy.host}/stream/{name}")

    @contextmanager
    def pusher(self) -> Iterator[BlobPusher]:
        with RegistryClient(self.options) as client, BlobPusher(client.session) as pusher:
            yield pusher


@pytest.fixture
def bed(registry_open: Registry, fault_proxy: Callable[[Registry], FaultProxy]) -> Iterator[_Bed]:
    """...and every stream thread a test starts has ended when it is over (none left reading a blob)."""
    proxy = fault_proxy(registry_open)
    yield _Bed(registry_open, proxy, options_for(registry_open, via=proxy, chunk_size=CHUNK))
    for thread in _stream_threads():
        thread.join(60)
        assert not thread.is_alive(), "a stream thread outlived its test"


def test_a_large_blob_goes_up_while_it_is_written_and_only_once(bed, store):
    data = os.urandom(1 << 20)
    dest = bed.repo("app")
    growing = _Watched()
    with bed.pusher() as pusher:
        pusher.stream(growing, [dest])
        # The writer stops half-way until the uploader has read: the upload started before the blob was whole.
        layer = _write(store, data, growing, pause_after=512 << 10, resume=growing.first_read)
        [how] = pusher.add(layer, [dest])
        assert how.result() == "pushed while written"
    assert bed.registry.blob_exists(str(layer.digest))
    assert bed.proxy.uploaded_bytes() == len(data), "the layer's bytes went up exactly once"
    assert bed.proxy.count("PATCH") == len(data) // CHUNK
    assert bed.proxy.count("POST", kind="blob_upload") == 1


def test_a_repository_added_before_the_streamed_one_mounts_from_it(bed, store):
    """The layer cache adds a step's layer (for its cache repository) before the build offers it to the
    destination the stream goes to: the cache's push waits for the stream and mounts, nothing goes up twice."""
    data = os.urandom(1 << 20)
    cache, dest = bed.repo("cache"), bed.repo("app")
    with bed.pusher() as pusher:
        growing = GrowingBlob()
        pusher.stream(growing, [dest])
        layer = _write(store, data, growing)
        [for_cache] = pusher.add(layer, [cache])
        [for_dest] = pusher.add(layer, [dest])
        assert (for_cache.result(), for_dest.result()) == ("mounted", "pushed while written")
    assert bed.proxy.uploaded_bytes() == len(data)


def test_a_blob_of_one_chunk_is_left_to_the_ordinary_push(bed, store):
    dest = bed.repo("small")
    growing = GrowingBlob()
    with RegistryClient(bed.options) as client:
        uploader = threading.Thread(target=lambda: outcome.append(upload_growing(client.session, dest, growing)))
        outcome: list[object] = []
        uploader.start()
        _write(store, os.urandom(CHUNK), growing)
        uploader.join(60)
    assert outcome == [None]
    assert bed.proxy.count() == 0, "nothing was sent for a small blob"


def test_a_stream_the_registry_refuses_is_cancelled_and_the_ordinary_push_delivers(bed, store):
    data = os.urandom(1 << 20)
    bed.proxy.fail("PATCH", r"/v2/stream/refused/blobs/uploads/", 500, times=1)
    dest = bed.repo("refused")
    with bed.pusher() as pusher:
        growing = GrowingBlob()
        pusher.stream(growing, [dest])
        layer = _write(store, data, growing)
        [how] = pusher.add(layer, [dest])
        assert how.result() == "pushed"
    assert bed.registry.blob_exists(str(layer.digest))
    assert bed.proxy.count("DELETE", kind="blob_upload") == 1, "the refused session was cancelled"


def test_a_failed_write_cancels_the_stream_and_nothing_arrives(bed, store):
    data = os.urandom(1 << 20)
    dest = bed.repo("failed")
    growing = _Watched()
    with bed.pusher() as pusher:
        pusher.stream(growing, [dest])
        with pytest.raises(OSError, match="No space left"):
            _write(store, data, growing, pause_after=512 << 10, resume=growing.first_read, fail_after=768 << 10)
    for thread in _stream_threads():
        thread.join(60)
    assert bed.proxy.count("DELETE", kind="blob_upload") == 1, "the session of the failed blob was cancelled"
    assert bed.proxy.count("PUT") == 0, "no blob was closed"
    assert list((store.root / "tmp").iterdir()) == [], "the failed blob left no file behind"


def test_abandon_stops_a_stream_and_cancels_its_session(bed, store):
    data = os.urandom(1 << 20)
    dest = bed.repo("abandoned")
    growing = _Watched()
    with RegistryClient(bed.options) as client:
        pusher = BlobPusher(client.session)
        pusher.stream(growing, [dest])
        resume = threading.Event()
        writer = threading.Thread(target=lambda: _write(store, data, growing, pause_after=512 << 10, resume=resume))
        writer.start()
        assert growing.first_read.wait(60)
        pusher.abandon()  # a cancelled build, while the layer is still being written
        resume.set()
        writer.join(60)
        for thread in _stream_threads():
            thread.join(60)
    assert bed.proxy.count("DELETE", kind="blob_upload") == 1
    assert bed.proxy.count("PUT") == 0
    digest = growing.digest
    assert digest is None or not bed.registry.blob_exists(str(digest))


def test_a_growing_blob_reads_what_is_written_and_reports_the_end(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    growing = GrowingBlob()
    with store.writer(growing=growing) as writer:
        writer.write(b"abc")
        assert growing.wait_for(2) == (3, False)
        assert growing.read(1, 10) == b"bc"
        writer.write(b"def")
    assert growing.wait_for(6) == (6, True)
    assert growing.read(0, 6) == b"abcdef", "the descriptor outlives the rename into the store"
    assert growing.digest == writer.digest and store.has(writer.digest)
    growing.release()
    with pytest.raises(BlobWriteFailed):
        growing.read(0, 1)

    failing = GrowingBlob()
    with pytest.raises(ValueError), store.writer(growing=failing) as writer:
        writer.write(b"x")
        raise ValueError("the tar writer failed")
    with pytest.raises(BlobWriteFailed, match="the tar writer failed"):
        failing.wait_for(0)
    failing.release()

    stopped = GrowingBlob()  # a cancelled build stops a stream even once its blob is whole
    with store.writer(growing=stopped) as writer:
        writer.write(b"whole")
    assert stopped.wait_for(0) == (5, True)
    stopped.stop("the push was abandoned")
    with pytest.raises(BlobWriteFailed, match="abandoned"):
        stopped.wait_for(0)
    stopped.release()

    given_up = GrowingBlob()
    given_up.release()  # the reader ended before the writer began: writing is not disturbed
    with store.writer(growing=given_up) as writer:
        writer.write(b"still written")
    assert store.has(writer.digest)
