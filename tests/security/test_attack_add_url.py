"""ADD <url> never fetches from the builder host's own services (server-side request forgery).

ADD's URL is fetched by wharfie itself, on the host, with the host's network,
whatever network the RUN steps get. The attack: `ADD
http://127.0.0.1:PORT/secret /x` (and `localhost`, `[::1]`, `127.1`,
`2130706433`, `0.0.0.0`, `[::ffff:127.0.0.1]`, the host's own interface
address with a service bound to all of them, the cloud metadata address
169.254.169.254) copied what a service kept to the host into the image. The
host check: the service on the host received no request at all, and the
build failed naming the refused destination. `--network=host`, the builder's
explicit choice, lets it through (the control: the probe does reach it).
Redirects are checked hop by hop, where each connection is made.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from attack import Attacker

from builder.steps.add_sources import download
from builder.steps.fetch_guard import FetchGuard
from fixtures.net import host_interface_address
from fixtures.readback import read_back, tree_of
from oci.errors import WharfieError

SECRET = "kept-by-a-host-service\n"


class _Recorder(http.server.ThreadingHTTPServer):
    """A host service: answers GET /secret, /redirect?to=URL; remembers every request it got."""

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family
        self.requests: list[str] = []
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Recorder

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.partition("=")[2])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = SECRET.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(host: str, family: socket.AddressFamily) -> Iterator[_Recorder]:
    server = _Recorder((host, 0), family)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def service() -> Iterator[_Recorder]:
    """Bound to every IPv4 address of the host, as many services are (loopback included)."""
    yield from _serve("0.0.0.0", socket.AF_INET)


@pytest.fixture(scope="module")
def service6() -> Iterator[_Recorder]:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here: the [::1] variant cannot run")
    yield from _serve("::", socket.AF_INET6)


def _host_address() -> str:
    address = host_interface_address()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    return address


def _build(attacker: Attacker, url: str, *extra: str, dest: str | None = None) -> subprocess.CompletedProcess[str]:
    context = attacker.context(f"FROM scratch\nADD {url} /stolen\n")
    result = attacker.build(context, *extra, push_to=dest)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.mark.parametrize("form", ["127.0.0.1", "localhost", "127.1", "2130706433", "0.0.0.0", "[::ffff:127.0.0.1]",
                                  "host-interface"])
def test_add_cannot_fetch_from_a_host_service(attacker: Attacker, service: _Recorder, form: str) -> None:
    host = _host_address() if form == "host-interface" else form
    before = len(service.requests)
    result = _build(attacker, f"http://{host}:{service.port}/secret")
    assert service.requests[before:] == [], f"ADD reached the host's service through {host}:\n{result.stderr}"
    assert result.returncode != 0
    assert "ADD" in result.stderr and "refused" in result.stderr and "--network=host" in result.stderr, result.stderr
    assert SECRET.strip() not in result.stderr


def test_add_cannot_fetch_from_the_ipv6_loopback(attacker: Attacker, service6: _Recorder) -> None:
    result = _build(attacker, f"http://[::1]:{service6.port}/secret")
    assert service6.requests == [], result.stderr
    assert result.returncode != 0 and "refused" in result.stderr, result.stderr


def test_add_cannot_ask_the_cloud_metadata_service(attacker: Attacker) -> None:
    # Nothing listens here: refused before any connection, not after a timeout.
    result = _build(attacker, "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    assert result.returncode != 0
    assert "169.254.169.254" in result.stderr and "link-local" in result.stderr, result.stderr


def test_the_builder_may_allow_it_with_the_host_network(attacker: Attacker, service: _Recorder, tmp_path: Path) -> None:
    """The control: with --network=host the same ADD reaches the service, so the refusals above are real."""
    dest = f"{attacker.registry_host}/attack/add-url-{attacker.mode}:1"
    before = len(service.requests)
    result = _build(attacker, f"http://127.0.0.1:{service.port}/secret", "--network=host", dest=dest)
    assert result.returncode == 0, result.stderr
    assert service.requests[before:] == ["/secret"]
    assert tree_of(read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"]).rootfs)["stolen"][4] == SECRET


# A redirect from a permitted server to a refused one, hop by hop. The permitted server must be one
# of this host's (the test has no other), so the guard is told which address counts as outside.
def test_a_redirect_to_the_loopback_is_refused_at_the_second_hop(service: _Recorder, tmp_path: Path) -> None:
    outside = _host_address()
    guard = FetchGuard(allow_host=False, outside=frozenset({outside}))
    before = len(service.requests)
    url = f"http://{outside}:{service.port}/redirect?to=http://127.0.0.1:{service.port}/secret"
    with pytest.raises(WharfieError) as refused:
        download(url, tmp_path, checksum=None, what="ADD", guard=guard)
    assert service.requests[before:] == [f"/redirect?to=http://127.0.0.1:{service.port}/secret"]
    assert "127.0.0.1" in str(refused.value) and "loopback" in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_a_name_is_checked_by_every_address_it_resolves_to(service: _Recorder, tmp_path: Path) -> None:
    guard = FetchGuard(allow_host=False)
    with pytest.raises(WharfieError) as refused:
        download(f"http://localhost:{service.port}/secret", tmp_path, checksum=None, what="ADD", guard=guard)
    assert "localhost" in str(refused.value) and "loopback" in str(refused.value)



@pytest.mark.parametrize(("path", "name"), [("/a/..", "download"), ("/..", "download"), ("/", "download"),
                                           ("/a/.", "a")])
def test_a_url_naming_no_file_is_saved_inside_the_download_directory(service: _Recorder, tmp_path: Path,
                                                                    path: str, name: str) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    saved = download(f"http://127.0.0.1:{service.port}{path}", downloads, checksum=None, what="ADD",
                     guard=FetchGuard(allow_host=True))
    assert saved.parent == downloads and saved.name == name and saved.read_text() == SECRET


def test_a_name_that_resolves_to_nothing_is_a_download_error(tmp_path: Path) -> None:
    with pytest.raises(WharfieError) as failed:
        download("http://no-such-host.invalid/x", tmp_path, checksum=None, what="ADD", guard=FetchGuard())
    assert "downloading http://no-such-host.invalid/x failed: cannot resolve no-such-host.invalid" in str(failed.value)
