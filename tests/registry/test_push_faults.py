"""Pushes against the real registry with faults injected by the proxy: mounts, 429, 503, drops, kills."""

from __future__ import annotations

import os

import httpx
import pytest
from registry_helpers import build_image, options_for, skopeo_inspect

from fixtures.proxy import Fault
from fixtures.registry import Registry
from registry.client import RegistryClient
from registry.errors import RegistryError, RegistryUnreachableError
from registry.reference import parse_reference


def push(client, ref, image, **kw):
    return client.push_image([ref], image.manifest_raw, image.media_type, image.config_raw, image.layers, **kw)


def test_mount_from_another_repo_uploads_no_layer_bytes(registry_open, fault_proxy, store):
    image = build_image(store, [{"big": os.urandom(200_000)}, {"small": b"s"}])
    proxy = fault_proxy(registry_open)
    with RegistryClient(options_for(registry_open, via=proxy)) as client:
        push(client, parse_reference(f"{proxy.host}/mount/source:1"), image)
        proxy.reset()
        push(client, parse_reference(f"{proxy.host}/mount/dest:1"), image,
             mount_sources=[parse_reference(f"{proxy.host}/mount/source")])
    assert proxy.uploaded_bytes() == 0
    assert proxy.count("POST", r"mount=sha256") == 3  # two layers and the config, all linked
    assert proxy.count("PATCH") == proxy.count("PUT", kind="blob_upload") == 0
    assert skopeo_inspect(registry_open, f"{registry_open.host}/mount/dest:1")["Digest"] == str(image.digest)


def test_second_destination_repo_mounts_from_the_first(registry_open, fault_proxy, store):
    image = build_image(store, [{"f": os.urandom(50_000)}])
    proxy = fault_proxy(registry_open)
    with RegistryClient(options_for(registry_open, via=proxy)) as client:
        client.push_image([parse_reference(f"{proxy.host}/multi/a:1"), parse_reference(f"{proxy.host}/multi/b:1")],
                          image.manifest_raw, image.media_type, image.config_raw, image.layers)
    assert proxy.uploaded_bytes() == image.layers[0].size + len(image.config_raw)  # once: for the first repository
    assert proxy.count("POST", r"from=multi%2Fa|from=multi/a") == 2


def test_mount_with_token_auth_asks_one_token_for_both_repositories(registry_token, token_issuer, token_accounts,
                                                                     fault_proxy, store):
    image = build_image(store, [{"m": os.urandom(10_000)}])
    with RegistryClient(options_for(registry_token)) as admin:
        push(admin, parse_reference(f"{registry_token.host}/base/img:1"), image)
    ci = token_accounts["ci_job"]
    proxy = fault_proxy(registry_token)
    token_issuer.reset_counters()
    with RegistryClient(options_for(registry_token, via=proxy, username=ci.username, password=ci.password)) as client:
        push(client, parse_reference(f"{proxy.host}/group/project/app:1"), image,
             mount_sources=[parse_reference(f"{proxy.host}/base/img")])
    assert proxy.uploaded_bytes() == 0
    scopes = [r.scopes for r in token_issuer.requests]
    assert ("repository:base/img:pull", "repository:group/project/app:pull,push") in scopes


def test_429_with_retry_after_waits_then_succeeds(registry_open, fault_proxy, store):
    image = build_image(store, [{"r": b"retry-after"}])
    proxy = fault_proxy(registry_open)
    proxy.fail("HEAD", r"/blobs/sha256", 429, headers={"Retry-After": "1"})
    sleeps: list[float] = []
    with RegistryClient(options_for(registry_open, via=proxy), sleep=sleeps.append) as client:
        push(client, parse_reference(f"{proxy.host}/faults/ratelimited:1"), image)
    assert len(sleeps) == 1 and sleeps[0] >= 1.0
    assert [e.status for e in proxy.exchanges if e.method == "HEAD"][:2] == [429, 404]  # then absent: uploaded


def test_503_during_monolithic_upload_restarts_from_a_fresh_session(registry_open, fault_proxy, store):
    image = build_image(store, [{"u": os.urandom(30_000)}])
    proxy = fault_proxy(registry_open)
    proxy.fail("PUT", r"/blobs/uploads/", 503)
    with RegistryClient(options_for(registry_open, via=proxy)) as client:
        push(client, parse_reference(f"{proxy.host}/faults/unavailable:1"), image)
    assert proxy.count("PUT", kind="blob_upload") == 3  # config, layer refused once, layer again
    assert proxy.count("POST", kind="blob_upload") == 3
    assert skopeo_inspect(registry_open, f"{registry_open.host}/faults/unavailable:1")["Digest"] == str(image.digest)


@pytest.mark.parametrize(("after_bytes", "resumed"), [(0, True), (10_000, False)])
def test_chunked_upload_survives_a_dropped_patch(registry_open, fault_proxy, store, after_bytes, resumed):
    """Cut before any byte reached the registry: resume at its ``Range``. Cut mid-body: distribution
    invalidates the session (its size no longer matches), so the upload starts over in a fresh one."""
    image = build_image(store, [{"c": os.urandom(300_000)}])
    size, chunk = image.layers[0].size, 64 * 1024
    proxy = fault_proxy(registry_open)
    proxy.add_fault(Fault(r"/blobs/uploads/", "PATCH", "drop", nth=2, after_bytes=after_bytes))
    options = options_for(registry_open, via=proxy, chunk_threshold=100_000, chunk_size=chunk)
    ref = parse_reference(f"{proxy.host}/faults/chunked-{after_bytes}:1")
    with RegistryClient(options) as client:
        push(client, ref, image)
    assert proxy.count("GET", kind="blob_upload") == 1  # asked the registry where it stands
    sessions = proxy.count("POST", kind="blob_upload")
    if resumed:
        assert sessions == 2 and proxy.uploaded_bytes() == size + chunk + len(image.config_raw)
    else:
        assert sessions == 3 and proxy.uploaded_bytes() == 2 * chunk + size + len(image.config_raw)
    assert skopeo_inspect(registry_open, f"{registry_open.host}/faults/chunked-{after_bytes}:1")["Digest"] == \
        str(image.digest)


def test_registry_killed_mid_push_fails_cleanly_then_rerun_finishes(tmp_path, store):
    image = build_image(store, [{"a": os.urandom(20_000)}, {"b": os.urandom(20_000)}, {"c": b"c"}])
    with Registry(tmp_path / "reg") as registry:
        ref = parse_reference(f"{registry.host}/killed/app:1")
        finished: list[str] = []

        class KillAfterFirst:
            def start(self, key, label, total): pass
            def advance(self, key, n): pass
            def finish(self, key, status):
                finished.append(key)
                if len(finished) == 1:
                    registry.kill()

        client = RegistryClient(options_for(registry, retries=1, push_concurrency=1), progress=KillAfterFirst())
        with pytest.raises(RegistryUnreachableError) as err:
            push(client, ref, image)
        assert "cannot reach" in str(err.value)
        client.close()
        registry.start()
        with httpx.Client() as raw:
            assert raw.get(f"{registry.url}/v2/killed/app/manifests/1").status_code == 404  # no half image
        with RegistryClient(options_for(registry)) as client:
            assert push(client, ref, image) == image.digest
        assert skopeo_inspect(registry, str(ref))["Digest"] == str(image.digest)


def test_truncated_blob_download_resumes_with_range(registry_open, fault_proxy, store, tmp_path):
    from oci.blobstore import BlobStore

    image = build_image(store, [{"t": os.urandom(100_000)}])
    ref = parse_reference(f"{registry_open.host}/faults/truncated:1")
    with RegistryClient(options_for(registry_open)) as client:
        push(client, ref, image)
    proxy = fault_proxy(registry_open)
    proxy.add_fault(Fault(r"/blobs/sha256", "GET", "truncate", after_bytes=5_000))
    layer = image.layers[0].descriptor
    pulled = BlobStore(tmp_path / "pulled")
    with RegistryClient(options_for(registry_open, via=proxy)) as client:
        path = client.download_blob(parse_reference(f"{proxy.host}/faults/truncated"), layer, pulled)
    assert path.read_bytes() == store.path(layer.digest).read_bytes()
    assert proxy.count("GET", kind="blob") == 2
    assert proxy.downloaded_bytes() == layer.size  # the resumed GET fetched only the rest


def test_digest_mismatch_on_pull_leaves_nothing_in_the_store(registry_open, fault_proxy, store, tmp_path):
    from oci.blobstore import BlobStore
    from oci.errors import DigestMismatchError

    image = build_image(store, [{"d": os.urandom(10_000)}])
    ref = parse_reference(f"{registry_open.host}/faults/corrupt:1")
    with RegistryClient(options_for(registry_open)) as client:
        push(client, ref, image)
    layer = image.layers[0].descriptor
    proxy = fault_proxy(registry_open)
    proxy.add_fault(Fault(r"/blobs/sha256", "GET", "status", status=200, body=b"\0" * layer.size,
                          headers={"Content-Type": "application/octet-stream"}))
    pulled = BlobStore(tmp_path / "pulled")
    with RegistryClient(options_for(registry_open, via=proxy)) as client, pytest.raises(DigestMismatchError):
        client.download_blob(parse_reference(f"{proxy.host}/faults/corrupt"), layer, pulled)
    assert not pulled.has(layer.digest)
    # No blob and no partial blob (the empty per-blob lock files are not content).
    leftovers = [p for p in (tmp_path / "pulled").rglob("*") if p.is_file() and p.parent.name != "locks"]
    assert leftovers == []


def test_injected_403_is_a_clear_denied_message(registry_open, fault_proxy, store):
    image = build_image(store, [{"p": b"protected"}])
    proxy = fault_proxy(registry_open)
    proxy.fail("PUT", r"/manifests/", 403, times=10)
    with RegistryClient(options_for(registry_open, via=proxy)) as client, pytest.raises(RegistryError) as err:
        push(client, parse_reference(f"{proxy.host}/protected/app:v1"), image)
    assert str(err.value).startswith(f"denied: fault injected by wharfie test proxy for {proxy.host}/protected/app (push)")


def test_mount_refused_for_lack_of_source_access_falls_back_to_upload(registry_token, token_issuer, fault_proxy,
                                                                       store):
    image = build_image(store, [{"n": os.urandom(5_000)}])
    with RegistryClient(options_for(registry_token)) as admin:
        push(admin, parse_reference(f"{registry_token.host}/private/base:1"), image)
    narrow = token_issuer.add_user("narrow", "narrow-pw", {"narrow/*": ("pull", "push")})
    proxy = fault_proxy(registry_token)
    with RegistryClient(options_for(registry_token, via=proxy, username=narrow.username,
                                    password=narrow.password)) as client:
        push(client, parse_reference(f"{proxy.host}/narrow/app:1"), image,
             mount_sources=[parse_reference(f"{proxy.host}/private/base")])
    assert proxy.uploaded_bytes() == image.layers[0].size + len(image.config_raw)
    assert skopeo_inspect(registry_token, f"{registry_token.host}/narrow/app:1")["Digest"] == str(image.digest)


def test_failure_in_a_later_repository_leaves_no_tag_anywhere(registry_open, fault_proxy, store):
    image = build_image(store, [{"t": os.urandom(20_000)}])
    proxy = fault_proxy(registry_open)
    proxy.fail("POST", r"/v2/multi/second/blobs/uploads/", 403, times=50)
    first, second = (parse_reference(f"{proxy.host}/multi/{name}:1") for name in ("first", "second"))
    with RegistryClient(options_for(registry_open, via=proxy)) as client, pytest.raises(RegistryError):
        client.push_image([first, second], image.manifest_raw, image.media_type, image.config_raw, image.layers)
    assert proxy.count("PUT", kind="manifest") == 0
    assert httpx.get(f"{registry_open.url}/v2/multi/first/manifests/1").status_code == 404


def test_first_chunk_dropped_resumes_from_byte_zero(registry_open, fault_proxy, store):
    """distribution answers ``Range: 0-0`` for an empty session: that is 0 bytes received, not 1."""
    image = build_image(store, [{"z": os.urandom(300_000)}])
    proxy = fault_proxy(registry_open)
    proxy.add_fault(Fault(r"/blobs/uploads/", "PATCH", "drop", nth=1, after_bytes=0))
    options = options_for(registry_open, via=proxy, chunk_threshold=100_000, chunk_size=64 * 1024)
    with RegistryClient(options) as client:
        push(client, parse_reference(f"{proxy.host}/faults/first-chunk:1"), image)
    assert skopeo_inspect(registry_open, f"{registry_open.host}/faults/first-chunk:1")["Digest"] == str(image.digest)


def test_lost_reply_to_the_final_put_still_succeeds(registry_open, fault_proxy, store):
    """The PUT reached the registry but its answer was lost: the push still completes."""
    image = build_image(store, [{"p": os.urandom(300_000)}])
    proxy = fault_proxy(registry_open)
    proxy.add_fault(Fault(r"/blobs/uploads/.*digest=", "PUT", "drop", nth=1, after_bytes=1 << 30))
    options = options_for(registry_open, via=proxy, chunk_threshold=100_000, chunk_size=64 * 1024)
    with RegistryClient(options) as client:
        push(client, parse_reference(f"{proxy.host}/faults/final-put:1"), image)
    assert skopeo_inspect(registry_open, f"{registry_open.host}/faults/final-put:1")["Digest"] == str(image.digest)


def test_pushing_again_finds_a_large_blob_by_head(registry_open, fault_proxy, store):
    """A HEAD answer declares the blob's size (here over the 1 MiB cap on small answers) and has no body."""
    image = build_image(store, [{"large": os.urandom(3 << 20)}])
    proxy = fault_proxy(registry_open)
    dest = parse_reference(f"{proxy.host}/again/app:1")
    with RegistryClient(options_for(registry_open, via=proxy)) as client:
        client.push_image([dest], image.manifest_raw, image.media_type, image.config_raw, image.layers)
        proxy.reset()
        client.push_image([dest], image.manifest_raw, image.media_type, image.config_raw, image.layers)
    assert proxy.uploaded_bytes() == 0
