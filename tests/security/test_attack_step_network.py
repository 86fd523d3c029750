"""A RUN step against host services bound to every interface, through the default (slirp4netns) network.

slirp4netns' `--disable-host-loopback` keeps the host's 127.0.0.1 out of a
step's reach (tests/security/test_step_network.py). The attack here: a
service bound to 0.0.0.0 (sshd, a registry, a database, started with the
common default) also answers on the host's own interface address, and a
step connecting there goes out through slirp's NAT, from the host, to the
host. The host check: the service saw no request from the step.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Iterator

import pytest
from attack import Attacker


class _Recorder(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        self.requests: list[str] = []
        super().__init__(("0.0.0.0", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Recorder

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def service() -> Iterator[_Recorder]:
    server = _Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _host_address() -> str:
    shown = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=False)
    for link in json.loads(shown.stdout or "[]"):
        for info in link.get("addr_info", []):
            if not info["local"].startswith("127."):
                return str(info["local"])
    pytest.skip("this host has no non-loopback IPv4 address")


@pytest.mark.xfail(strict=True, reason="slirp4netns cannot filter destinations: a step reaches services the host "
                   "binds on 0.0.0.0 through the host's own interface address (as docker's bridge does)")
def test_a_step_cannot_reach_a_host_service_on_the_hosts_interface(attacker: Attacker, service: _Recorder,
                                                                   busybox_ref: str) -> None:
    address = _host_address()
    probe = f"http://{address}:{service.server_address[1]}/from-the-step"
    context = attacker.context(f"FROM {busybox_ref}\nRUN wget -q -O - {probe} || echo 'host service: blocked'\n")
    result = attacker.build(context)
    assert result.returncode == 0, result.stderr
    assert "host service: blocked" in result.stderr, "the probe ran and was turned away"
    assert service.requests == [], f"the step reached a host service at {address}"
