"""Exact request sequences of the client's verbs, pinned with MockTransport; and the progress views."""

from __future__ import annotations

import io
import logging

import httpx
import pytest
from registry_helpers import build_image

from oci.digest import Digest
from oci.errors import DigestMismatchError
from registry.client import RegistryClient
from registry.options import RegistryOptions
from registry.progress import LogProgress, NullProgress, TerminalProgress, choose_progress
from registry.reference import parse_reference


def mock_client(handler, **options) -> RegistryClient:
    return RegistryClient(RegistryOptions(use_docker_config=False, backoff_base=0, **options),
                          transport=httpx.MockTransport(handler))


def test_manifest_by_digest_with_wrong_bytes_is_refused():
    def handler(request):
        return httpx.Response(200, content=b'{"schemaVersion":2}',
                              headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})

    ref = parse_reference("reg.example/g/p").with_digest(Digest.of_bytes(b"expected"))
    with mock_client(handler) as client, pytest.raises(DigestMismatchError):
        client.get_manifest(ref)


def test_push_sequence_mount_refused_uploads_into_the_offered_session(store):
    image = build_image(store, [{"f": b"file"}])
    layer, config = image.layers[0].digest, Digest.of_bytes(image.config_raw)
    log: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path, query = request.url.path, request.url.query.decode()
        line = f"{request.method} {path}{'?' + query if query else ''}".replace("%3A", ":").replace("%2F", "/")
        log.append(line.replace(str(layer), "LAYER").replace(str(config), "CONFIG"))
        if request.method == "HEAD":
            return httpx.Response(404)
        if request.method == "POST" and "mount=" in query:
            return httpx.Response(202, headers={"Location": "/v2/g/dst/blobs/uploads/u1?_state=s"})
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "https://reg.example/v2/g/dst/blobs/uploads/u2"})
        if request.method == "PUT" and "/blobs/uploads/" in path:
            request.read()
            return httpx.Response(201)
        return httpx.Response(201, headers={"Docker-Content-Digest": str(image.digest)})

    with mock_client(handler, push_concurrency=1) as client:
        digest = client.push_image([parse_reference("reg.example/g/dst:1"), parse_reference("reg.example/g/dst:2")],
                                   image.manifest_raw, image.media_type, image.config_raw, image.layers,
                                   mount_sources=[parse_reference("reg.example/g/src")])
    assert digest == image.digest
    assert log == [
        "HEAD /v2/g/dst/blobs/CONFIG",
        "POST /v2/g/dst/blobs/uploads/?mount=CONFIG&from=g/src",
        "PUT /v2/g/dst/blobs/uploads/u1?_state=s&digest=CONFIG",
        "HEAD /v2/g/dst/blobs/LAYER",
        "POST /v2/g/dst/blobs/uploads/?mount=LAYER&from=g/src",
        "PUT /v2/g/dst/blobs/uploads/u1?_state=s&digest=LAYER",
        "PUT /v2/g/dst/manifests/1",
        "PUT /v2/g/dst/manifests/2",
    ]


def test_failed_blob_means_no_manifest(store):
    image = build_image(store, [{"a": b"a"}, {"b": b"b"}])
    methods: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        methods.append(f"{request.method} {request.url.path}")
        if request.method == "HEAD":
            return httpx.Response(404)
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/g/p/blobs/uploads/x"})
        request.read()
        return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID", "message": "digest did not match"}]})

    with mock_client(handler) as client, pytest.raises(Exception, match="digest_invalid"):
        client.push_image([parse_reference("reg.example/g/p:1")], image.manifest_raw, image.media_type,
                          image.config_raw, image.layers)
    assert not any("/manifests/" in m for m in methods)


def test_manifest_naming_a_missing_blob_is_refused_before_any_request(store):
    image = build_image(store, [{"a": b"a"}])
    with mock_client(lambda r: pytest.fail("no request expected")) as client, \
            pytest.raises(Exception, match="not given to push"):
        client.push_image([parse_reference("reg.example/g/p:1")], image.manifest_raw, image.media_type,
                          image.config_raw, ())


def test_log_progress_one_line_per_blob(caplog):
    caplog.set_level(logging.INFO, logger="registry.progress")
    progress = LogProgress()
    progress.start("k", "abc123 to reg/x", 10)
    progress.advance("k", 10)
    progress.finish("k", "pushed")
    progress.start("m", "def456 to reg/x", 5)
    progress.finish("m", "exists")
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["pushed abc123 to reg/x", "exists def456 to reg/x"]


def test_terminal_progress_draws_bars_with_rich_and_keeps_finished_lines():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    progress = TerminalProgress(out)
    progress.start("k", "abc123", 2000)
    progress.advance("k", 1000)
    progress.finish("k", "pushed")
    text = out.getvalue()
    assert "abc123" in text and "2.0 kB" in text and "\x1b[" in text  # rich's bar: label, size, colours
    assert "    pushed abc123 1.0 KB\n" in text
    assert text.endswith("\x1b[?25h\r"), "the display is stopped (cursor shown again) once no blob moves"


def test_choose_progress():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(choose_progress(quiet=True, stream=Tty()), NullProgress)
    assert isinstance(choose_progress(quiet=False, stream=Tty()), TerminalProgress)
    assert isinstance(choose_progress(quiet=False, stream=io.StringIO()), LogProgress)
