"""A hostile registry's answers must not lead wharfie's own requests to the host's loopback (blind SSRF).

The Dockerfile names the base image's registry (`FROM evil.example/img`), so
that registry's answers are untrusted, and so are the URLs they choose:
wharfie requests them itself, on the host. The attacks: the registry answers
the manifest request with `307 Location: http://127.0.0.1:PORT/any/path?query`;
or every request with `401 WWW-Authenticate: Bearer realm=http://127.0.0.1:...`
(the token request is the GET); or, when wharfie pushes to it, an upload
session whose `Location` is on the loopback (the blob's PUT goes there). A
service that keeps to the host's loopback would get the attacker's path and
query: the request itself is the harm. The host check: that service received
no request, and the build failed with one line naming the registry and the
refused destination.

Fixed by registry/destinations.py (on oci/own_addresses.py, the rule ADD's
downloads follow too): a registry elsewhere may not lead to the host's own
addresses; one on the host may (a registry on 127.0.0.1 or localhost is the
normal test set-up, its token realm too): to any of them from the loopback,
else only to addresses of its own kind. The hostile registry here listens on
the host's network address, the only stand-in for "elsewhere" one machine
has: it is of another kind than the loopback, so the rule refuses it the
loopback. The control: the same registry on the loopback is followed there.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fixtures.net import host_interface_address
from fixtures.readback import run_wharfie


class _Server(http.server.ThreadingHTTPServer):
    def __init__(self, host: str, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.requests: list[str] = []
        super().__init__((host, 0), handler)

    @property
    def host(self) -> str:
        """``HOST:PORT``, as a reference names a registry."""
        return f"{self.server_address[0]}:{self.server_address[1]}"


class _Quiet(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def answer(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _Loopback(_Quiet):
    """A service that keeps to the host's loopback: every request it gets is the attack's success."""

    def do_GET(self) -> None:
        self.answer(404)

    do_HEAD = do_PUT = do_PATCH = do_POST = do_DELETE = do_GET


def _serve(server: _Server) -> Iterator[_Server]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def loopback_service() -> Iterator[_Server]:
    yield from _serve(_Server("127.0.0.1", _Loopback))


def _host_address() -> str:
    address = host_interface_address()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address for the hostile registry")
    return address


def _redirecting(target: str) -> type[_Quiet]:
    class Redirecting(_Quiet):
        """Answers the API check, redirects every other request to `target`."""

        def do_GET(self) -> None:
            self.answer(200) if self.path == "/v2/" else self.answer(307, {"Location": target})

        do_HEAD = do_GET

    return Redirecting


def _challenging(target: str) -> type[_Quiet]:
    class Challenging(_Quiet):
        """Answers every request with a Bearer challenge whose token realm is `target`."""

        def do_GET(self) -> None:
            self.answer(401, {"WWW-Authenticate": f'Bearer realm="{target}",service="evil"'})

        do_HEAD = do_GET

    return Challenging


def _uploading(target: str) -> type[_Quiet]:
    class Uploading(_Quiet):
        """Takes pushes: no blob is there, and every upload session lives at `target`."""

        def do_GET(self) -> None:
            self.answer(200) if self.path == "/v2/" else self.answer(404)

        def do_POST(self) -> None:
            self.answer(202, {"Location": target, "Docker-Upload-UUID": "evil"})

        do_HEAD = do_PUT = do_PATCH = do_GET

    return Uploading


Handler = Callable[[str], type[_Quiet]]


@pytest.fixture
def hostile_registry(loopback_service: _Server) -> Iterator[Callable[[Handler, str], _Server]]:
    """Starts a registry on `host` whose answers lead to the loopback service's /admin/delete?everything=1."""
    target = f"http://127.0.0.1:{loopback_service.server_address[1]}/admin/delete?everything=1"
    running: list[Iterator[_Server]] = []

    def start(handler: Handler, host: str) -> _Server:
        served = _serve(_Server(host, handler(target)))
        running.append(served)
        return next(served)

    yield start
    for served in running:
        next(served, None)


def _build(tmp_path: Path, registry: str, dockerfile: str, *extra: str) -> subprocess.CompletedProcess[str]:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    (context / "payload").write_text("pushed\n")
    return run_wharfie("build", str(context), "--insecure-registry", registry, "--cache-dir", str(tmp_path / "cache"),
                       *extra)


def _assert_refused(result: subprocess.CompletedProcess[str], registry: _Server, loopback: _Server) -> None:
    assert loopback.requests == [], "wharfie sent the registry's chosen request to a host-only service"
    assert registry.requests, "the hostile registry was never asked: the attack was not tried"
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"wharfie: error: refused to follow {registry.host} to 127.0.0.1:{loopback.server_address[1]}: "
                            "a loopback address"), error


def test_a_registry_redirect_does_not_reach_the_hosts_loopback(hostile_registry: Callable[[Handler, str], _Server],
                                                               loopback_service: _Server, tmp_path: Path) -> None:
    registry = hostile_registry(_redirecting, _host_address())
    result = _build(tmp_path, registry.host, f"FROM {registry.host}/evil/img\n", "--no-push")
    _assert_refused(result, registry, loopback_service)
    assert "for " + f"{registry.host}/evil/img (pull)" in result.stderr


def test_a_token_realm_does_not_reach_the_hosts_loopback(hostile_registry: Callable[[Handler, str], _Server],
                                                         loopback_service: _Server, tmp_path: Path) -> None:
    registry = hostile_registry(_challenging, _host_address())
    result = _build(tmp_path, registry.host, f"FROM {registry.host}/evil/img\n", "--no-push")
    _assert_refused(result, registry, loopback_service)


def test_an_upload_location_does_not_reach_the_hosts_loopback(hostile_registry: Callable[[Handler, str], _Server],
                                                              loopback_service: _Server, tmp_path: Path) -> None:
    registry = hostile_registry(_uploading, _host_address())
    result = _build(tmp_path, registry.host, "FROM scratch\nCOPY payload /payload\n",
                    "--destination", f"{registry.host}/evil/img:1")
    _assert_refused(result, registry, loopback_service)
    assert any(line.startswith("POST /v2/evil/img/blobs/uploads/") for line in registry.requests), registry.requests


def test_a_registry_on_the_loopback_may_lead_to_the_loopback(hostile_registry: Callable[[Handler, str], _Server],
                                                             loopback_service: _Server, tmp_path: Path) -> None:
    """The control: whoever names a registry on 127.0.0.1 is on this host already; its redirect is followed
    (and so the attacks above would be seen if the rule let them through)."""
    registry = hostile_registry(_redirecting, "127.0.0.1")
    result = _build(tmp_path, registry.host, f"FROM {registry.host}/evil/img\n", "--no-push")
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr  # the loopback service's 404
    assert "refused" not in result.stderr, result.stderr
    assert loopback_service.requests and all(r.endswith(" /admin/delete?everything=1")
                                             for r in loopback_service.requests), loopback_service.requests


def test_the_hostile_registry_is_not_on_the_loopback() -> None:
    """The attacks above are about a registry's answers, not a registry already on the loopback."""
    host = _host_address()
    assert not host.startswith("127.") and socket.inet_aton(host)
