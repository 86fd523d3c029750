"""Fuzzing what registries send: mutated manifests, indexes, configs, token answers, tag lists and headers.

Contract (README, issue #17): every operation ends in success or in one
`WharfieError` whose message is one line naming the registry; never a
KeyError/TypeError/ValueError/RecursionError or a hang; nothing half-written
in the blob store. Examples run in-process against `ScriptedRegistry` through
`httpx.MockTransport` (thousands per minute); `test_over_real_http` sends a
bounded number through a real socket. Settings: fuzzing.py.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from fuzzing import campaign
from hypothesis import example, given
from hypothesis import strategies as st

from fixtures.scripted_registry import ScriptedRegistry, ScriptedServer, as_json
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.errors import WharfieError
from oci.models import Platform
from registry.cleanup import CleanupPolicy
from registry.client import RegistryClient
from registry.inspect import inspect_image
from registry.options import RegistryOptions
from registry.pull import pull_image
from registry.reference import parse_reference

KINDS = ("config", "manifest", "index", "token", "tags")
OPERATIONS = ("pull", "inspect", "head", "tags", "cleanup")

# -- hostile values ----------------------------------------------------------------------------

MEDIA_TYPES = st.sampled_from([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.unknown.thing+json", "text/html", "", "a/b\nc", "x" * 300, "application/json",
])
DIGESTS = st.one_of(
    st.binary(max_size=8).map(lambda b: "sha256:" + hashlib.sha256(b).hexdigest()),
    st.sampled_from(["sha256:", "sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:" + "G" * 64,
                     "sha512:" + "0" * 128, "SHA256:" + "0" * 64, "../../etc/passwd", "sha256:" + "0" * 64 + "\n"]),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 2**63, 2**64, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=40), MEDIA_TYPES, DIGESTS)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                            max_size=3), max_leaves=8)


def nested(depth: int, kind: str) -> bytes:
    """JSON nested `depth` levels, written directly (Python's own json would recurse)."""
    return (b"[" * depth + b"0" + b"]" * depth) if kind == "list" else (b'{"a":' * depth + b"0" + b"}" * depth)


DEEP = st.builds(nested, st.integers(min_value=60, max_value=5000), st.sampled_from(["list", "dict"]))
_DEEP_MARK = "wharfie-fuzz-deep-value"

# -- mutations of a JSON document ---------------------------------------------------------------


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into `value` (the root included), e.g. ("layers", 0, "size")."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(paths(item, (*prefix, index)))
    return out


def replace_at(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(document))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return copy


def delete_at(document: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return {}
    copy = json.loads(json.dumps(document))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return copy


@st.composite
def mutated_document(draw: st.DrawFn, document: Any) -> bytes:
    """`document` with one value replaced, deleted or nested deep, then maybe damaged as bytes."""
    where = draw(st.sampled_from(paths(document)))
    how = draw(st.sampled_from(["replace", "replace", "delete", "deep", "keep"]))
    if how == "replace":
        document = replace_at(document, where, draw(VALUES))
    elif how == "delete":
        document = delete_at(document, where)
    elif how == "deep":
        document = replace_at(document, where, _DEEP_MARK)
    raw = json.dumps(document, allow_nan=True).encode()
    if how == "deep":
        raw = raw.replace(json.dumps(_DEEP_MARK).encode(), draw(DEEP))
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "garbage", "latin1", "bom"]))
    if damage == "truncate":
        raw = raw[: draw(st.integers(min_value=0, max_value=max(0, len(raw) - 1)))]
    elif damage == "garbage":
        raw += draw(st.binary(min_size=1, max_size=20))
    elif damage == "latin1":
        raw = raw.replace(b'"', b'"\xe9', 1)
    elif damage == "bom":
        raw = b"\xef\xbb\xbf" + raw
    return raw


class Mutator:
    """The `document` hook: mutates the one document of kind `target` with Hypothesis' `draw`."""

    def __init__(self, draw: st.DrawFn, target: str) -> None:
        self.draw, self.target = draw, target

    def __call__(self, kind: str, document: Any) -> bytes:
        if kind != self.target:
            return as_json(kind, document)
        return self.draw(mutated_document(document))


# -- running an operation against a registry and checking the contract ---------------------------


def client_for(registry: ScriptedRegistry, transport: httpx.BaseTransport | None = None,
               **options: Any) -> RegistryClient:
    transport = transport or httpx.MockTransport(registry.handle)
    settings = {"use_docker_config": False, "retries": 1, "backoff_base": 0.0, **options}
    return RegistryClient(RegistryOptions(**settings), transport=transport, sleep=lambda _seconds: None)


def run(operation: str, client: RegistryClient, reference: str, store: BlobStore) -> None:
    ref = parse_reference(reference)
    platform = Platform("linux", "amd64")
    if operation == "pull":
        pull_image(client, ref, platform, store)
    elif operation == "inspect":
        json.dumps(inspect_image(client, ref, platform))
    elif operation == "head":
        client.head_manifest(ref)
    elif operation == "tags":
        client.list_tags(ref)
    elif operation == "cleanup":
        client.cleanup(ref, CleanupPolicy(".*", keep_n=5), dry_run=True)


def check_contract(action: Callable[[], None], registry_name: str, store: BlobStore) -> WharfieError | None:
    """Run `action`; it succeeds or raises a one-line `WharfieError` naming the registry; the store stays whole."""
    failure: WharfieError | None = None
    try:
        action()
    except WharfieError as exc:  # anything else propagates: Hypothesis reports it with its traceback
        failure = exc
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, repr(message)
        assert len(message) < 1000, message
        assert registry_name in message, message
        assert "Traceback" not in message
    check_store(store)
    return failure


def check_store(store: BlobStore) -> None:
    """Every blob in the store hashes to its name; no temporary file is left."""
    for blob in (store.root / "blobs").rglob("*"):
        if blob.is_file():
            assert hashlib.new(blob.parent.name, blob.read_bytes()).hexdigest() == blob.name, blob
    assert not any((store.root / "tmp").iterdir()), list((store.root / "tmp").iterdir())


@contextmanager
def scratch_store() -> Iterator[BlobStore]:
    """A fresh blob store per example, removed after it (pytest's fixtures live as long as the whole test)."""
    with tempfile.TemporaryDirectory(prefix="wharfie-registry-fuzz-") as root:
        yield BlobStore(Path(root) / "store")


# -- the fuzz tests --------------------------------------------------------------------------------


@campaign(400)
@given(data=st.data(), target=st.sampled_from(KINDS), operation=st.sampled_from(OPERATIONS),
       token=st.booleans(), index=st.booleans())
def test_mutated_documents(data, target, operation, token, index):
    registry = ScriptedRegistry(document=Mutator(data.draw, target), token=token, index=index)
    with scratch_store() as store, client_for(registry) as client:
        check_contract(lambda: run(operation, client, registry.reference, store), registry.host, store)


DESCRIPTORS = {"manifest": (("config",), ("layers", 0)), "index": (("manifests", 0),)}


@st.composite
def wrong_descriptor(draw: st.DrawFn, document: Any, places: tuple[tuple[Any, ...], ...]) -> bytes:
    """One descriptor of `document` naming the wrong digest or size (valid-looking, so it gets fetched)."""
    place = draw(st.sampled_from(places))
    descriptor = document
    for step in place:
        descriptor = descriptor[step]
    if draw(st.booleans()):
        size = descriptor["size"]
        descriptor["size"] = draw(st.sampled_from([0, 1, size - 1, size + 1, size * 2, 2**40, 2**63 - 1]))
    else:
        other = draw(st.binary(max_size=16))
        descriptor["digest"] = draw(st.sampled_from([
            "sha256:" + hashlib.sha256(other).hexdigest(), "sha512:" + hashlib.sha512(other).hexdigest(),
            descriptor["digest"].replace("sha256:", "sha512:") + "0" * 64]))
    return json.dumps(document).encode()


@campaign(100)
@given(data=st.data(), target=st.sampled_from(sorted(DESCRIPTORS)), token=st.booleans())
def test_wrong_digests_and_sizes(data, target, token):
    def document(kind: str, doc: Any) -> bytes:
        return data.draw(wrong_descriptor(doc, DESCRIPTORS[kind])) if kind == target else as_json(kind, doc)

    registry = ScriptedRegistry(document=document, token=token)
    with scratch_store() as store, client_for(registry) as client:
        failure = check_contract(partial(run, "pull", client, registry.reference, store), registry.host, store)
    assert failure is not None  # every wrong digest or size is caught (none of them names the right blob)


HEADER_VALUES = st.one_of(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
                          MEDIA_TYPES.filter(lambda v: "\n" not in v), DIGESTS.filter(lambda v: "\n" not in v),
                          st.sampled_from(["-1", "99999999999999999999", "0", "gzip", "bytes 0-1/2", "</x>; rel=next",
                                           'Bearer realm="ftp://x"', 'Bearer realm="http://[::1"', 'Bearer realm="/t"',
                                           "Basic", 'Bearer realm=""']))
HEADER_NAMES = st.sampled_from(["Content-Type", "Docker-Content-Digest", "Content-Length", "Content-Encoding",
                                "Link", "WWW-Authenticate", "Retry-After", "Location", "Content-Range"])


@campaign(200)
@given(kind=st.sampled_from(["config", "manifest", "index", "token", "tags", "challenge", "layer", "base"]),
       headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, min_size=1, max_size=3),
       operation=st.sampled_from(OPERATIONS), token=st.booleans())
def test_mutated_headers(kind, headers, operation, token):
    registry = ScriptedRegistry(headers={kind: headers}, token=token)
    with scratch_store() as store, client_for(registry) as client:
        check_contract(lambda: run(operation, client, registry.reference, store), registry.host, store)


@campaign(60)
@given(kind=st.sampled_from(["config", "manifest", "index", "token", "tags", "layer"]),
       body=st.one_of(st.binary(max_size=200), st.sampled_from([b"", b"null", b"[]", b"{}", b"\x00" * 64,
                                                                b'{"a":' * 50_000, b"[" * 200_000])),
       operation=st.sampled_from(OPERATIONS))
@example(kind="manifest", body=b"[" * 200_000, operation="pull")
@example(kind="token", body=b'{"token": {"a": 1}}', operation="pull")
@example(kind="config", body=b'{"rootfs": {"diff_ids": "sha256:abc"}}', operation="pull")
def test_arbitrary_bodies(kind, body, operation):
    registry = ScriptedRegistry(document=lambda k, doc: body if k == kind else as_json(k, doc), token=kind == "token")
    if kind == "layer":
        registry.layer = body  # served under the digest the manifest names: a wrong blob
    with scratch_store() as store, client_for(registry) as client:
        check_contract(lambda: run(operation, client, registry.reference, store), registry.host, store)


@campaign(15)
@given(data=st.data(), target=st.sampled_from(KINDS), token=st.booleans(),
       lie=st.sampled_from([None, "shorter", "longer"]))
def test_over_real_http(data, target, token, lie):
    """A bounded number end to end: real sockets, real Content-Length (sometimes a lie about the body)."""
    server = ScriptedServer(lambda request: registry.handle(request))
    with server:
        mutate = Mutator(data.draw, target)
        registry = ScriptedRegistry(server.host, document=mutate, token=token)
        if lie is not None:
            size = len(getattr(registry, "token_answer" if target == "token" else target) or b"")
            registry.headers[target] = {"Content-Length": str(max(0, size - 3) if lie == "shorter" else size + 3)}
        with scratch_store() as store, client_for(registry, transport=httpx.HTTPTransport(), timeout=5.0,
                                                  insecure_registries=frozenset({server.host})) as client:
            check_contract(lambda: run("pull", client, registry.reference, store), server.host, store)


def test_the_valid_registry_pulls():
    """The fuzzers' baseline: unmutated, every operation succeeds (else the fuzz tests prove nothing)."""
    for token in (False, True):
        registry = ScriptedRegistry(token=token)
        with scratch_store() as store, client_for(registry) as client:
            for operation in OPERATIONS:
                assert check_contract(partial(run, operation, client, registry.reference, store),
                                      registry.host, store) is None, operation
            assert store.has(Digest.of_bytes(registry.layer))
