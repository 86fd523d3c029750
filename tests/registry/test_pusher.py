"""`BlobPusher`: blobs pushed while the caller goes on, manifests only after all of them, nothing left on abandon."""

from __future__ import annotations

import os
import threading

import httpx
import pytest
from registry_helpers import build_image, options_for, skopeo_inspect

from registry.client import RegistryClient
from registry.errors import RegistryError
from registry.options import RegistryOptions
from registry.pusher import BlobPusher, PushAbandoned
from registry.reference import parse_reference


def test_a_blob_added_early_is_in_the_registry_before_any_manifest(registry_open, fault_proxy, store):
    image = build_image(store, [{"early": os.urandom(100_000)}, {"late": os.urandom(1_000)}])
    proxy = fault_proxy(registry_open)
    dest = parse_reference(f"{proxy.host}/pusher-early/app:1")
    with RegistryClient(options_for(registry_open, via=proxy)) as client, \
            BlobPusher(client.session) as pusher:
        [first] = pusher.add(image.layers[0], [dest])
        assert first.result() == "pushed"
        assert registry_open.blob_exists(str(image.layers[0].digest))
        assert proxy.count("PUT", kind="manifest") == 0
        digest = pusher.push_image([dest], image.manifest_raw, image.media_type, image.config_raw, image.layers)
    assert digest == image.digest
    # The early layer went up once: push_image joined it instead of pushing it again.
    assert proxy.uploaded_bytes() == sum(layer.size for layer in image.layers) + len(image.config_raw)
    assert skopeo_inspect(registry_open, f"{registry_open.host}/pusher-early/app:1")["Digest"] == str(image.digest)


def test_one_upload_per_registry_the_other_repository_mounts(registry_open, fault_proxy, store):
    """The build's cache store and its destination push share the pusher: the layer's bytes go up once."""
    image = build_image(store, [{"shared": os.urandom(200_000)}])
    proxy = fault_proxy(registry_open)
    cache, dest = (parse_reference(f"{proxy.host}/shared/{name}") for name in ("cache", "app"))
    with RegistryClient(options_for(registry_open, via=proxy)) as client, BlobPusher(client.session) as pusher:
        from_cache = pusher.add(image.layers[0], [cache])
        from_build = pusher.add(image.layers[0], [dest])
        pusher.wait([*from_cache, *from_build])
    assert sorted(f.result() for f in (*from_cache, *from_build)) == ["mounted", "pushed"]
    assert proxy.uploaded_bytes() == image.layers[0].size
    assert registry_open.blob_exists(str(image.layers[0].digest))


def test_adding_a_blob_twice_pushes_it_once(registry_open, fault_proxy, store):
    image = build_image(store, [{"twice": os.urandom(10_000)}])
    proxy = fault_proxy(registry_open)
    dest = parse_reference(f"{proxy.host}/twice/app")
    with RegistryClient(options_for(registry_open, via=proxy)) as client, BlobPusher(client.session) as pusher:
        first, second = pusher.add(image.layers[0], [dest])[0], pusher.add(image.layers[0], [dest])[0]
        assert first is second
        first.result()
    assert proxy.count("HEAD", kind="blob") == 1


def test_a_background_failure_is_reported_and_no_manifest_is_put(registry_open, fault_proxy, store):
    image = build_image(store, [{"a": os.urandom(5_000)}, {"b": os.urandom(5_000)}])
    proxy = fault_proxy(registry_open)
    proxy.fail("POST", r"/v2/denied/app/blobs/uploads/", 403, times=100)
    dest = parse_reference(f"{proxy.host}/denied/app:1")
    with RegistryClient(options_for(registry_open, via=proxy)) as client, BlobPusher(client.session) as pusher:
        futures = pusher.add(image.layers[0], [dest])
        with pytest.raises(RegistryError):
            pusher.wait(futures)
        assert isinstance(pusher.failure([dest]), RegistryError)
        with pytest.raises(RegistryError, match="denied"):
            pusher.push_image([dest], image.manifest_raw, image.media_type, image.config_raw, image.layers)
    assert proxy.count("PUT", kind="manifest") == 0
    assert httpx.get(f"{registry_open.url}/v2/denied/app/manifests/1").status_code == 404


def test_abandon_drops_queued_pushes_and_gives_up_the_running_one_at_once(store):
    """A cancelled build: what has not started is never sent, and a push stuck on a silent registry
    does not hold the build (its waiter is told at once; its daemon thread ends with the request)."""
    image = build_image(store, [{"one": b"1"}, {"two": b"2"}, {"three": b"3"}])
    first, *rest = image.layers
    requests: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(f"{request.method} {request.url.path}")
        entered.set()
        assert release.wait(timeout=60)  # the registry does not answer until the test says so
        return httpx.Response(200)

    options = RegistryOptions(use_docker_config=False, backoff_base=0, push_concurrency=1)
    dest = parse_reference("reg.example/g/app:1")
    with RegistryClient(options, transport=httpx.MockTransport(handler)) as client:
        before = set(threading.enumerate())
        pusher = BlobPusher(client.session)
        [running] = pusher.add(first, [dest])
        queued = [pusher.add(layer, [dest])[0] for layer in rest]
        workers = set(threading.enumerate()) - before
        assert entered.wait(timeout=60)
        pusher.abandon()  # returns although the first push is still waiting for its answer
        with pytest.raises(PushAbandoned):
            running.result(timeout=0)
        assert all(f.cancelled() for f in queued)
        with pytest.raises(PushAbandoned):
            pusher.add(first, [dest])
        release.set()
        for worker in workers:
            worker.join(timeout=60)
            assert not worker.is_alive() and worker.daemon
    assert requests == [f"HEAD /v2/g/app/blobs/{first.digest}"]


def test_pushing_again_finds_a_large_blob_by_head(registry_open, fault_proxy, store):
    """A HEAD answer declares the blob's size (here over the 1 MiB cap on small answers) and has no body."""
    image = build_image(store, [{"large": os.urandom(3 << 20)}])
    proxy = fault_proxy(registry_open)
    dest = parse_reference(f"{proxy.host}/again/app:1")
    with RegistryClient(options_for(registry_open, via=proxy)) as client:
        client.push_image([dest], image.manifest_raw, image.media_type, image.config_raw, image.layers)
        proxy.reset()
        with BlobPusher(client.session) as pusher:
            [again] = pusher.add(image.layers[0], [dest])
            assert again.result() == "exists"
    assert proxy.uploaded_bytes() == 0
