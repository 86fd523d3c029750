"""A RUN step against host services bound to every interface, through the default (slirp4netns) network.

slirp4netns' `--disable-host-loopback` keeps the host's 127.0.0.1 out of a
step's reach (tests/security/test_step_network.py). The attack here: a
service bound to 0.0.0.0 (sshd, a registry, a database, started with the
common default) also answers on the host's own interface address, and a
step connecting there would go out through slirp's NAT, from the host, to
the host. The fence (builder/execution/host_fence.py): `unreachable` routes
for the host's own addresses in the step's namespace, which the step,
without CAP_NET_ADMIN, cannot remove. The host check: the service saw no
request from the step; `--network=host` is the control that it would have.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from attack import Attacker

from fixtures.net import host_interface_address


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
    address = host_interface_address()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    return address


def _own_network(lines: list[str]) -> None:
    """The step really had the default network, with the host's addresses fenced (no fallback to another)."""
    assert "sandbox: network: default" in lines, "\n".join(lines)
    fenced = [line for line in lines if "of the host's own addresses fenced off by unreachable routes" in line]
    assert len(fenced) == 1 and not fenced[0].startswith("sandbox: network: 0 "), "\n".join(lines)


def test_a_step_cannot_reach_a_host_service_on_the_hosts_interface(attacker: Attacker, service: _Recorder,
                                                                   busybox_ref: str) -> None:
    address = _host_address()
    probe = f"http://{address}:{service.server_address[1]}/from-the-step"
    context = attacker.context(f"FROM {busybox_ref}\nRUN wget -q -O - {probe} || echo 'host service: blocked'\n")
    result = attacker.build(context, "-v", "debug", own_network=True)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    _own_network(lines)
    assert "host service: blocked" in lines, "the probe ran and was turned away"
    # At once, by the step's own routing table: nothing went out through slirp to the host.
    assert f"wget: can't connect to remote host ({address}): No route to host" in lines, result.stderr
    assert service.requests == [], f"the step reached a host service at {address}"


def test_a_step_cannot_remove_the_fence(attacker: Attacker, service: _Recorder, busybox_ref: str) -> None:
    """Without CAP_NET_ADMIN (docker's default set) the step's `ip route del` is refused; the fence holds."""
    address = _host_address()
    probe = f"http://{address}:{service.server_address[1]}/after-route-del"
    step = (f"ip route show | grep '^unreachable {address}' && "
            f"(ip route del unreachable {address}/32 && echo 'route del: DONE' || echo 'route del: refused'); "
            f"(ip route flush type unreachable && echo 'route flush: DONE' || echo 'route flush: refused'); "
            f"(unshare -r ip route del unreachable {address}/32 && echo 'userns route del: DONE' "
            "|| echo 'userns route del: refused'); "
            f"wget -q -O - {probe} || echo 'host service: blocked'")
    context = attacker.context(f"FROM {busybox_ref}\nRUN {step}\n")
    result = attacker.build(context, "-v", "debug", own_network=True)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    _own_network(lines)
    assert f"unreachable {address}" in [line.strip() for line in lines], "the step sees the fence"
    refused = ["route del: refused", "route flush: refused", "userns route del: refused"]
    assert all(line in lines for line in refused), result.stderr
    assert "ip: RTNETLINK answers: Operation not permitted" in lines, result.stderr
    assert "host service: blocked" in lines and service.requests == [], result.stderr


def test_the_host_and_none_networks_are_left_as_they_were(attacker: Attacker, service: _Recorder,
                                                          busybox_ref: str) -> None:
    """The control: with `--network=host` (the builder's choice) the same probe reaches the service, unfenced;
    with `--network=none` the step has no route at all, and no fence either."""
    address = _host_address()
    probe = f"http://{address}:{service.server_address[1]}/host-network"
    step = f"ip route show; wget -q -O - {probe} || echo 'host service: blocked'"
    context = attacker.context(f"FROM {busybox_ref}\nRUN {step}\n")
    host = attacker.build(context, "-v", "debug", "--network=host", own_network=True)
    assert host.returncode == 0, host.stderr
    assert "/host-network" in service.requests, host.stderr
    service.requests.remove("/host-network")
    none = attacker.build(context, "-v", "debug", "--network=none", cache=attacker.path("cache"), own_network=True)
    assert none.returncode == 0, none.stderr
    for result in (host, none):
        assert "fenced off by unreachable routes" not in result.stderr
        assert not any(line.startswith("unreachable ") for line in result.stderr.splitlines()), result.stderr
    assert f"wget: can't connect to remote host ({address}): Network is unreachable" in none.stderr.splitlines()
    assert service.requests == []
