"""What builder/ asks of the client, without its session or HTTP statuses: tags, cleanup, not-found, lazy layers.

Against the real registry; request counts come from the fault proxy.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace

import pytest
from registry_helpers import build_image, options_for

from oci.blobstore import BlobStore
from oci.models import Platform
from registry import CleanupPolicy, NotFoundError, RegistryClient, RemoteLayer
from registry.reference import parse_reference


def push(client, ref, image):
    return client.push_image([ref], image.manifest_raw, image.media_type, image.config_raw, image.layers)


@pytest.fixture
def client(registry_open, make_client):
    return make_client(registry_open)


def test_list_and_delete_tags(registry_open, client, store):
    repo = parse_reference(f"{registry_open.host}/api/tags")
    one, two = build_image(store, [{"a": b"1"}]), build_image(store, [{"a": b"2"}])
    push(client, repo.with_tag("v1"), one)
    push(client, repo.with_tag("same-as-v1"), one)
    push(client, repo.with_tag("v2"), two)
    assert sorted(client.list_tags(repo)) == ["same-as-v1", "v1", "v2"]
    assert sorted(client.list_tags(repo.with_tag("v1"), page_size=1)) == ["same-as-v1", "v1", "v2"]  # a tag is ignored
    assert client.delete_tag(repo.with_tag("v1")) == one.digest
    assert sorted(client.list_tags(repo)) == ["same-as-v1", "v2"]  # the other tag of that manifest stays
    assert client.get_manifest(repo.with_tag("same-as-v1"))[2] == one.digest


def test_deleting_a_missing_tag_is_a_typed_not_found(registry_open, client, store):
    repo = parse_reference(f"{registry_open.host}/api/missing-tag")
    push(client, repo.with_tag("there"), build_image(store, [{"m": b"m"}]))
    with pytest.raises(NotFoundError) as err:
        client.delete_tag(repo.with_tag("absent"))
    assert err.value.code == "MANIFEST_UNKNOWN" and "absent" in str(err.value)


def test_find_manifest_is_none_for_a_missing_tag_or_repository(registry_open, client, store):
    repo = parse_reference(f"{registry_open.host}/api/find")
    image = build_image(store, [{"f": b"f"}])
    push(client, repo.with_tag("1"), image)
    assert client.find_manifest(repo.with_tag("1"))[2] == image.digest
    assert client.find_manifest(repo.with_tag("2")) is None
    assert client.find_manifest(parse_reference(f"{registry_open.host}/api/never-pushed:1")) is None
    with pytest.raises(NotFoundError) as err:
        client.get_manifest(repo.with_tag("2"))
    assert err.value.code == "MANIFEST_UNKNOWN" and err.value.has_code("MANIFEST_UNKNOWN")


def test_cleanup_deletes_what_the_policy_names(registry_open, client, store):
    repo = parse_reference(f"{registry_open.host}/api/cleanup")
    old = build_image(store, [{"o": b"old"}], created="2020-01-01T00:00:00Z")
    new = build_image(store, [{"n": b"new"}], created="2030-01-01T00:00:00Z")
    for tag, image in (("old-1", old), ("new-1", new), ("latest", old)):
        push(client, repo.with_tag(tag), image)
    policy = CleanupPolicy(".*", older_than=dt.timedelta(days=30))
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert [t.name for t in client.cleanup(repo, policy, dry_run=True, now=now).delete] == ["old-1"]
    assert sorted(client.list_tags(repo)) == ["latest", "new-1", "old-1"]
    assert [t.name for t in client.cleanup(repo, policy, now=now).delete] == ["old-1"]
    assert sorted(client.list_tags(repo)) == ["latest", "new-1"]  # latest is never deleted


def test_remote_layers_are_lazy_fetched_once_and_mounted_by_a_push(registry_open, fault_proxy, store, tmp_path):
    image = build_image(store, [{"l": os.urandom(30_000)}, {"k": b"k"}])
    proxy = fault_proxy(registry_open)
    with RegistryClient(options_for(registry_open, via=proxy)) as client:
        source = parse_reference(f"{proxy.host}/api/lazy-base:1")
        push(client, source, image)
        resolved = client.resolve_image(source, Platform("linux", "amd64"))
        proxy.reset()
        pulled = BlobStore(tmp_path / "pulled")
        layers = client.remote_layers(resolved, pulled)
        assert all(isinstance(layer, RemoteLayer) for layer in layers)
        assert [layer.diff_id for layer in layers] == [layer.diff_id for layer in image.layers]
        assert proxy.exchanges == [] and not layers[0].local  # nothing sent, nothing stored
        with layers[0].open_compressed() as blob:
            assert blob.read() == store.path(image.layers[0].digest).read_bytes()
        with layers[0].open_compressed() as blob:
            blob.read()
        assert proxy.count("GET", kind="blob") == 1 and layers[0].local
        proxy.reset()
        push(client, parse_reference(f"{proxy.host}/api/lazy-dest:1"), replace(image, layers=layers))
        assert proxy.uploaded_bytes() == len(image.config_raw)  # the layers were mounted from their repository
        assert proxy.count("POST", r"mount=sha256.*from=api") == 2  # both layers; the config is uploaded
