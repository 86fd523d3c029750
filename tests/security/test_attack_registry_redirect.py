"""A hostile registry's answers lead wharfie's own requests to the host's loopback (blind SSRF).

The Dockerfile names the base image's registry (`FROM evil.example/img`), so
that registry's answers are untrusted. The attack: the registry answers the
manifest request with `307 Location: http://127.0.0.1:PORT/any/path?query`,
and wharfie, on the host, follows it: a GET with the attacker's path and
query to a service that keeps to the host's loopback (the content is then
refused, as it matches no digest, so the request itself is the harm). The
registry's token realm (`WWW-Authenticate: Bearer realm=...`) is another way
to the same GET. The host check: the loopback service received no request.

Not fixed here: the registry client (registry/session.py) would need the
rule ADD's downloads follow (builder/steps/fetch_guard.py: no loopback,
link-local or host address unless the registry itself is one), and
registry/ may not import builder/. Left for the lead to place (the address
rule in a package both may import).
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.readback import run_wharfie


class _Server(http.server.ThreadingHTTPServer):
    def __init__(self, host: str, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.requests: list[str] = []
        super().__init__((host, 0), handler)


class _Loopback(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


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
    shown = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=False)
    for link in json.loads(shown.stdout or "[]"):
        for info in link.get("addr_info", []):
            if not info["local"].startswith("127."):
                return str(info["local"])
    pytest.skip("this host has no non-loopback IPv4 address for the hostile registry")


@pytest.fixture
def hostile_registry(loopback_service: _Server) -> Iterator[str]:
    """A registry on the host's interface address (standing in for one elsewhere) that redirects every pull."""
    target = f"http://127.0.0.1:{loopback_service.server_address[1]}/admin/delete?everything=1"

    class Redirecting(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/v2/":
                self.send_response(200)
            else:
                self.send_response(307)
                self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = _Server(_host_address(), Redirecting)
    for running in _serve(server):
        yield f"{server.server_address[0]}:{server.server_address[1]}"


@pytest.mark.xfail(strict=True, reason="the registry client follows a registry's redirect to the host's loopback "
                   "(needs fetch_guard's address rule in registry/session.py)")
def test_a_registry_redirect_does_not_reach_the_hosts_loopback(hostile_registry: str, loopback_service: _Server,
                                                               tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {hostile_registry}/evil/img\n")
    result = run_wharfie("build", str(context), "--no-push", "--insecure-registry", hostile_registry,
                         "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert loopback_service.requests == [], "wharfie sent the registry's chosen GET to a host-only service"


def test_the_hostile_registry_is_not_on_the_loopback(hostile_registry: str) -> None:
    """The xfail above is about the redirect, not a registry already on the loopback (which Dockerfiles may name)."""
    host = hostile_registry.rsplit(":", 1)[0]
    assert not host.startswith("127.") and socket.inet_aton(host)
