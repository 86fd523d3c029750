"""One retry loop per operation: a failure that never heals costs exactly retries+1 requests, never (retries+1)².

The requests are counted where they arrive, at the fault proxy in front of the
real registry. Waits go to a recorded fake `sleep`, so nothing here sleeps and
the waits the client asked for (``Retry-After`` included) can be asserted.
"""

from __future__ import annotations

import os

import pytest
from registry_helpers import build_image, options_for

from fixtures.proxy import Fault
from oci.blobstore import BlobStore
from registry.client import RegistryClient
from registry.errors import RegistryError, RegistryUnreachableError
from registry.reference import parse_reference

RETRIES = 3
ALWAYS = 1000  # a fault that outlasts any retry budget


@pytest.fixture
def pushed(registry_open, store):
    """An image in ``retry/counts:1`` of the open registry (pushed directly, not through a proxy)."""
    image = build_image(store, [{"r": os.urandom(20_000)}])
    with RegistryClient(options_for(registry_open)) as client:
        client.push_image([parse_reference(f"{registry_open.host}/retry/counts:1")], image.manifest_raw,
                          image.media_type, image.config_raw, image.layers)
    return image


def counting_client(registry, proxy, sleeps: list[float], **overrides) -> RegistryClient:
    return RegistryClient(options_for(registry, via=proxy, retries=RETRIES, **overrides), sleep=sleeps.append)


def test_unreachable_blob_download_is_tried_retries_plus_one_times(registry_open, fault_proxy, pushed, tmp_path):
    proxy = fault_proxy(registry_open)
    proxy.add_fault(Fault(r"/blobs/sha256", "GET", "drop", times=ALWAYS))
    layer = pushed.layers[0].descriptor
    pulled = BlobStore(tmp_path / "pulled")
    sleeps: list[float] = []
    with counting_client(registry_open, proxy, sleeps) as client, pytest.raises(RegistryUnreachableError) as err:
        client.download_blob(parse_reference(f"{proxy.host}/retry/counts"), layer, pulled)
    assert proxy.count("GET", kind="blob") == RETRIES + 1
    assert len(sleeps) == RETRIES
    assert f"blob {layer.digest.short}" in str(err.value) and "\n" not in str(err.value)
    assert not pulled.has(layer.digest)


def test_failing_blob_download_503_is_tried_retries_plus_one_times(registry_open, fault_proxy, pushed, tmp_path):
    proxy = fault_proxy(registry_open)
    proxy.fail("GET", r"/blobs/sha256", 503, times=ALWAYS)
    sleeps: list[float] = []
    with counting_client(registry_open, proxy, sleeps) as client, pytest.raises(RegistryError) as err:
        client.download_blob(parse_reference(f"{proxy.host}/retry/counts"), pushed.layers[0].descriptor,
                             BlobStore(tmp_path / "pulled"))
    assert err.value.status == 503
    assert proxy.count("GET", kind="blob") == RETRIES + 1 and len(sleeps) == RETRIES


def test_manifest_503_is_tried_retries_plus_one_times(registry_open, fault_proxy, pushed):
    proxy = fault_proxy(registry_open)
    proxy.fail("GET", r"/manifests/", 503, times=ALWAYS)
    sleeps: list[float] = []
    with counting_client(registry_open, proxy, sleeps) as client, pytest.raises(RegistryError) as err:
        client.get_manifest(parse_reference(f"{proxy.host}/retry/counts:1"))
    assert err.value.status == 503 and f"{proxy.host}/retry/counts:1" in str(err.value)
    assert proxy.count("GET", kind="manifest") == RETRIES + 1 and len(sleeps) == RETRIES


def test_429_retry_after_is_waited_and_tried_retries_plus_one_times(registry_open, fault_proxy, pushed):
    proxy = fault_proxy(registry_open)
    proxy.fail("HEAD", r"/manifests/", 429, times=ALWAYS, headers={"Retry-After": "7"})
    sleeps: list[float] = []
    with counting_client(registry_open, proxy, sleeps, backoff_base=0) as client, \
            pytest.raises(RegistryError) as err:
        client.head_manifest(parse_reference(f"{proxy.host}/retry/counts:1"))
    assert err.value.status == 429 and err.value.retry_after == 7
    assert proxy.count("HEAD", kind="manifest") == RETRIES + 1
    assert sleeps == [7.0] * RETRIES  # the registry's Retry-After, not our (zero) backoff


def test_429_then_success_waits_retry_after_once(registry_open, fault_proxy, pushed):
    proxy = fault_proxy(registry_open)
    proxy.fail("GET", r"/manifests/", 429, times=1, headers={"Retry-After": "2"})
    sleeps: list[float] = []
    with counting_client(registry_open, proxy, sleeps, backoff_base=0) as client:
        _raw, _, digest = client.get_manifest(parse_reference(f"{proxy.host}/retry/counts:1"))
    assert digest == pushed.digest and sleeps == [2.0]
    assert [e.status for e in proxy.exchanges if e.kind == "manifest"] == [429, 200]


def test_push_with_upload_sessions_refused_is_tried_retries_plus_one_times(registry_open, fault_proxy, store):
    image = build_image(store, [{"p": os.urandom(10_000)}])
    proxy = fault_proxy(registry_open)
    proxy.fail("POST", r"/blobs/uploads/", 503, times=ALWAYS)
    sleeps: list[float] = []
    with counting_client(registry_open, proxy, sleeps, push_concurrency=1) as client, \
            pytest.raises(RegistryError) as err:
        client.push_image([parse_reference(f"{proxy.host}/retry/refused:1")], image.manifest_raw, image.media_type,
                          image.config_raw, image.layers)
    assert err.value.status == 503
    assert proxy.count("POST", kind="blob_upload") == RETRIES + 1  # the first blob; nothing else was tried
    assert proxy.count("PUT", kind="manifest") == 0


def test_push_with_the_upload_put_always_dropped_is_tried_retries_plus_one_times(registry_open, fault_proxy, store):
    image = build_image(store, [{"d": os.urandom(10_000)}])
    proxy = fault_proxy(registry_open)
    proxy.add_fault(Fault(r"/blobs/uploads/", "PUT", "drop", times=ALWAYS))
    sleeps: list[float] = []
    with counting_client(registry_open, proxy, sleeps, push_concurrency=1) as client, \
            pytest.raises(RegistryUnreachableError):
        client.push_image([parse_reference(f"{proxy.host}/retry/dropped:1")], image.manifest_raw, image.media_type,
                          image.config_raw, image.layers)
    assert proxy.count("PUT", kind="blob_upload") == RETRIES + 1
    assert proxy.count("PUT", kind="manifest") == 0


@pytest.mark.parametrize("retries", [0, 1])
def test_retries_option_is_the_whole_budget(registry_open, fault_proxy, pushed, retries):
    proxy = fault_proxy(registry_open)
    proxy.fail("GET", r"/manifests/", 502, times=ALWAYS)
    sleeps: list[float] = []
    client = RegistryClient(options_for(registry_open, via=proxy, retries=retries), sleep=sleeps.append)
    with client, pytest.raises(RegistryError):
        client.get_manifest(parse_reference(f"{proxy.host}/retry/counts:1"))
    assert proxy.count("GET", kind="manifest") == retries + 1 and len(sleeps) == retries


def test_permanent_errors_are_not_retried(registry_open, fault_proxy, pushed):
    proxy = fault_proxy(registry_open)
    sleeps: list[float] = []
    with counting_client(registry_open, proxy, sleeps) as client, pytest.raises(RegistryError) as err:
        client.get_manifest(parse_reference(f"{proxy.host}/retry/counts:missing"))
    assert err.value.has_code("MANIFEST_UNKNOWN")
    assert proxy.count("GET", kind="manifest") == 1 and sleeps == []
