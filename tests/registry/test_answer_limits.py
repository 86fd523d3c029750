"""Each limit on a registry's answers (registry/limits.py): refused past it with the limit named, accepted at it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from fixtures.scripted_registry import ScriptedRegistry, ScriptedServer, as_json
from oci.blobstore import BlobStore
from oci.errors import DigestMismatchError
from oci.models import Platform
from registry.client import RegistryClient
from registry.errors import InvalidResponseError, LimitExceededError, RegistryError
from registry.limits import (
    MAX_CONFIG_SIZE,
    MAX_JSON_DEPTH,
    MAX_LAYERS,
    MAX_LISTING_SIZE,
    MAX_MANIFEST_SIZE,
    MAX_SMALL_RESPONSE,
    MAX_TOKEN_RESPONSE,
    json_too_deep,
)
from registry.options import RegistryOptions
from registry.pull import pull_image
from registry.reference import parse_reference

AMD64 = Platform("linux", "amd64")


def client_for(registry: ScriptedRegistry, transport: httpx.BaseTransport | None = None,
               **options: Any) -> RegistryClient:
    return RegistryClient(RegistryOptions(use_docker_config=False, retries=0, **options),
                          transport=transport or httpx.MockTransport(registry.handle), sleep=lambda _s: None)


def padded(document: Any, size: int) -> bytes:
    """`document` as JSON, padded with trailing spaces (still valid JSON) to exactly `size` bytes."""
    raw = json.dumps(document).encode()
    return raw + b" " * (size - len(raw))


def hook(kind: str, make: Any):
    """A document hook replacing the document of `kind` by `make(document)`."""
    return lambda k, document: make(document) if k == kind else as_json(k, document)


def limit_error(action: Any, limit: str) -> LimitExceededError:
    with pytest.raises(LimitExceededError) as err:
        action()
    assert err.value.limit == limit and f"(limit: {limit})" in str(err.value) and "reg.example" in str(err.value)
    return err.value


def test_manifest_size(tmp_path):
    at_limit = ScriptedRegistry(document=hook("manifest", lambda doc: padded(doc, MAX_MANIFEST_SIZE)), index=False)
    with client_for(at_limit) as client:
        assert client.resolve_image(parse_reference(at_limit.reference), AMD64).config.os == "linux"
    over = ScriptedRegistry(document=hook("manifest", lambda doc: padded(doc, MAX_MANIFEST_SIZE + 1)), index=False)
    store = BlobStore(tmp_path / "store")
    with client_for(over) as client:
        limit_error(lambda: pull_image(client, parse_reference(over.reference), AMD64, store), "manifest size")
    assert not any((tmp_path / "store" / "blobs").rglob("*"))


def test_config_size_is_refused_before_any_byte_is_fetched():
    def huge_config(doc: dict) -> bytes:
        doc["config"]["size"] = MAX_CONFIG_SIZE + 1
        return as_json("manifest", doc)

    registry = ScriptedRegistry(document=hook("manifest", huge_config))
    with client_for(registry) as client:
        limit_error(lambda: client.resolve_image(parse_reference(registry.reference), AMD64), "config size")
    assert not any("/blobs/" in line for line in registry.requests)


def test_config_longer_than_its_descriptor_is_a_digest_mismatch():
    def shorter(doc: dict) -> bytes:
        doc["config"]["size"] -= 1
        return as_json("manifest", doc)

    registry = ScriptedRegistry(document=hook("manifest", shorter))
    with client_for(registry) as client, pytest.raises(DigestMismatchError, match="config of reg.example/g/p"):
        client.resolve_image(parse_reference(registry.reference), AMD64)


def test_token_answer_size():
    registry = ScriptedRegistry(document=hook("token", lambda doc: padded(doc, MAX_TOKEN_RESPONSE + 1)), token=True)
    with client_for(registry) as client:
        limit_error(lambda: client.get_manifest(parse_reference(registry.reference)), "token response size")
    at_limit = ScriptedRegistry(document=hook("token", lambda doc: padded(doc, MAX_TOKEN_RESPONSE)), token=True)
    with client_for(at_limit) as client:
        client.get_manifest(parse_reference(at_limit.reference))


def test_listing_size():
    registry = ScriptedRegistry(document=hook("tags", lambda doc: padded(doc, MAX_LISTING_SIZE + 1)))
    with client_for(registry) as client:
        limit_error(lambda: client.list_tags(parse_reference(registry.reference)), "listing size")


def test_small_answers_size():
    registry = ScriptedRegistry()

    def big_ping(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200, content=b" " * (MAX_SMALL_RESPONSE + 1))
        return registry.handle(request)

    with client_for(registry, transport=httpx.MockTransport(big_ping)) as client:
        limit_error(lambda: client.check_login(registry.host), "small response size")


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
def test_json_depth(depth):
    def deep(doc: dict) -> bytes:  # the config object is level 1; its "x" value adds `depth` levels
        raw = as_json("config", doc)
        return raw[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"

    registry = ScriptedRegistry(document=hook("config", deep))
    with client_for(registry) as client:
        if depth < MAX_JSON_DEPTH:
            assert client.resolve_image(parse_reference(registry.reference), AMD64).config.extra["x"]
        else:
            limit_error(lambda: client.resolve_image(parse_reference(registry.reference), AMD64),
                        "JSON nesting depth")


def test_depth_ignores_brackets_inside_strings():
    assert not json_too_deep(json.dumps({"a": "[" * 1000, "b": "\\\"[[[" * 100}).encode())
    assert json_too_deep(b"[" * 65 + b"]" * 65)


@pytest.mark.parametrize("layers", [MAX_LAYERS, MAX_LAYERS + 1])
def test_layers_per_manifest(layers):
    def many(doc: dict) -> bytes:
        doc["layers"] = doc["layers"] * layers
        return as_json("manifest", doc)

    registry = ScriptedRegistry(document=hook("manifest", many))
    with client_for(registry) as client:
        if layers <= MAX_LAYERS:
            assert len(client.resolve_image(parse_reference(registry.reference), AMD64).manifest.layers) == layers
        else:
            error = limit_error(lambda: client.resolve_image(parse_reference(registry.reference), AMD64),
                                "layers per manifest")
            assert f"has {layers} layers" in str(error)


def test_a_declared_length_over_the_limit_is_refused_unread():
    registry = ScriptedRegistry(headers={"manifest": {"Content-Length": str(MAX_MANIFEST_SIZE * 100)}}, index=False)
    with client_for(registry) as client:
        limit_error(lambda: client.get_manifest(parse_reference(registry.reference)), "manifest size")


def test_a_compressed_small_body_is_refused():
    registry = ScriptedRegistry(headers={"index": {"Content-Encoding": "gzip"}})
    with client_for(registry) as client, pytest.raises(InvalidResponseError, match="Content-Encoding 'gzip'"):
        client.get_manifest(parse_reference(registry.reference))


def test_a_huge_error_body_is_not_read():
    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, content=b'{"errors":[{"code":"X","message":"' + b"y" * (2 << 20) + b'"}]}')

    registry = ScriptedRegistry()
    with client_for(registry, transport=httpx.MockTransport(failing)) as client, pytest.raises(RegistryError) as err:
        client.get_manifest(parse_reference(registry.reference))
    assert err.value.status == 500 and err.value.errors == () and len(str(err.value)) < 300


def test_over_a_real_socket_an_oversize_manifest_is_refused():
    registry = ScriptedRegistry(index=False)
    with ScriptedServer(lambda request: registry.handle(request)) as server:
        registry.manifest = padded({"schemaVersion": 2}, 32 << 20)
        with client_for(registry, transport=httpx.HTTPTransport(),
                        insecure_registries=frozenset({server.host})) as client, \
                pytest.raises(LimitExceededError) as err:
            client.get_manifest(parse_reference(f"{server.host}/g/p:latest"))
        assert err.value.limit == "manifest size" and server.host in str(err.value)
