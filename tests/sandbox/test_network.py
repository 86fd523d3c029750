"""A RUN step's network (builder/execution/network.py), attacked from inside the step, checked from the host.

By default a step has a namespace of its own reaching out through slirp4netns:
it cannot reach a service on the host's loopback (directly or through
slirp's gateway), cannot take a port from the host, and a raw socket in it
sees none of the host's traffic. `network="host"` is the control: the same
probes succeed there, so each test can fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.execution import network as net
from builder.execution.network import NetworkError
from builder.execution.sandbox import RunFailed, RunSpec, run_in_sandbox

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/bin/busybox").exists(),
                                reason="needs root and a static /bin/busybox (rootless: tests/security)")

APPLETS = ("sh", "cat", "echo", "nslookup", "wget", "ip", "grep")


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("slirp4netns") is None:
        pytest.skip("slirp4netns is not installed (scripts/setup.sh installs it)")
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the network probe")
    root = tmp_path_factory.mktemp("netroot")
    (root / "bin").mkdir()
    (root / "etc").mkdir()
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    built = subprocess.run(["gcc", "-static", "-O1", "-o", str(root / "bin/netprobe"),
                            str(Path(__file__).with_name("netprobe.c"))], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        pytest.skip(f"cannot build a static binary here: {built.stderr.strip()[:200]}")
    return root


def _run(root: Path, script: str, network: str = "default") -> list[str]:
    lines: list[str] = []
    run_in_sandbox(RunSpec(root=root, argv=["/bin/sh", "-c", script], env={"PATH": "/bin"}, network=network),
                   output=lines.append)
    return lines


def _slirp_children() -> list[int]:
    """slirp4netns processes that are children of this test process (the sandbox starts them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("Name", "").strip() == "slirp4netns" and fields.get("PPid", "").strip() == str(os.getpid()):
            found.append(int(entry.name))
    return found


@pytest.fixture
def host_service() -> Iterator[int]:
    """A TCP service on the host's 127.0.0.1 only (connects complete through the backlog)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.mark.parametrize("network", ["default", "host"])
def test_the_hosts_loopback_is_out_of_reach(rootfs: Path, host_service: int, network: str) -> None:
    lines = _run(rootfs, f"netprobe connect 127.0.0.1 {host_service}; netprobe connect 10.0.2.2 {host_service}; "
                         "true", network)
    if network == "host":
        assert lines[0] == "connect: ok"  # the control: the probe does reach it
    else:
        # Its own loopback has no such service; slirp's gateway refuses to lead to the host's loopback.
        assert lines[0] == "connect: Connection refused"
        assert lines[1] in ("connect: Connection refused", "connect: Network is unreachable"), lines
    assert _slirp_children() == [], "slirp4netns outlived its step"


@pytest.mark.parametrize("network", ["default", "host"])
def test_a_step_takes_no_port_from_the_host(rootfs: Path, network: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("0.0.0.0", 0))
        held.listen(1)
        port = held.getsockname()[1]
        lines = _run(rootfs, f"netprobe bind {port}; true", network)
    assert lines == (["bind: in use"] if network == "host" else ["bind: ok"])


@pytest.mark.parametrize("network", ["default", "host"])
def test_a_raw_socket_sees_no_host_traffic(rootfs: Path, network: str) -> None:
    marker = f"wharfie-sniff-{uuid.uuid4().hex}"
    stop = threading.Event()

    def chatter() -> None:  # the host talks on its loopback for as long as the step listens
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            while not stop.wait(0.02):
                sender.sendto(f"Authorization: Basic {marker}".encode(), ("127.0.0.1", 9))

    thread = threading.Thread(target=chatter, daemon=True)
    thread.start()
    try:
        lines = _run(rootfs, f"netprobe sniff {marker} 3; true", network)
    finally:
        stop.set()
        thread.join()
    # On its own network the step holds no net_raw (builder/execution/capabilities.py): not even a packet socket.
    assert lines == ([f"sniff: saw {marker}"] if network == "host" else ["sniff: no socket: Operation not permitted"])


def test_the_step_has_its_own_interface_and_resolver(rootfs: Path) -> None:
    lines = _run(rootfs, "ip -o -4 addr show | grep -v ' lo '; cat /etc/resolv.conf")
    assert any(" tap0 " in line and "10.0.2.100/24" in line for line in lines), lines
    assert "nameserver 10.0.2.3" in lines


def test_none_has_no_way_out(rootfs: Path, host_service: int) -> None:
    lines = _run(rootfs, f"netprobe connect 127.0.0.1 {host_service}; netprobe connect 10.0.2.2 53; "
                         "ip -o link show | grep -c tap0; true", "none")
    assert lines[0].startswith("connect: ") and lines[0] != "connect: ok"
    assert lines[1] == "connect: Network is unreachable" and lines[2] == "0"


def _outside_reachable(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=5):
            return None
    except OSError as exc:
        return f"this machine cannot reach {host}:{port} itself ({exc})"


@pytest.mark.slow
def test_dns_and_outbound_connections_work_by_default(rootfs: Path) -> None:
    host = "deb.debian.org"
    reason = _outside_reachable(host, 80)
    if reason is not None:
        print(f"skipping: {reason}")
        pytest.skip(reason)
    lines = _run(rootfs, f"nslookup {host} >/dev/null && echo dns: ok; "
                         f"wget -q -O /dev/null http://{host}/debian/dists/stable/Release && echo http: ok; true")
    assert lines == ["dns: ok", "http: ok"], lines


def test_no_slirp4netns_is_a_one_line_error(rootfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net.shutil, "which", lambda name: None)
    with pytest.raises(NetworkError, match="slirp4netns, which is not installed .* --network=host or --network=none"):
        _run(rootfs, "echo ran")


def test_a_failing_slirp4netns_stops_the_step(rootfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No hang and no step without its network: the step is told to stop, and the error says why."""
    monkeypatch.setattr(net.shutil, "which", lambda name: "/bin/false")
    with pytest.raises(NetworkError, match="cannot set up the step's network: slirp4netns: exit 1"):
        _run(rootfs, "echo ran")
    assert _slirp_children() == []


def test_a_step_that_fails_still_stops_slirp(rootfs: Path) -> None:
    with pytest.raises(RunFailed):
        _run(rootfs, "exit 3")
    assert _slirp_children() == []


def test_default_network_in_a_container_without_tun_is_the_containers(monkeypatch: pytest.MonkeyPatch,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A GitLab job container has no /dev/net/tun (docker's device list): its own network, said once."""
    monkeypatch.setattr(net, "_TUN", "/nonexistent/tun")
    monkeypatch.setattr(net, "container_evidence", lambda: "/.dockerenv")
    net._warn_container_network.cache_clear()
    with caplog.at_level("WARNING", logger="wharfie"):
        modes = [net.step_network_mode(None, build_mode="default", host_allowed=False, where="Dockerfile:2")
                 for _ in range(3)]
    assert modes == ["host"] * 3
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "/.dockerenv" in warnings[0] and "/nonexistent/tun" in warnings[0]
    assert net.step_network_mode("none", build_mode="default", host_allowed=False, where="Dockerfile:3") == "none"


def test_default_network_outside_a_container_without_tun_stays_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net, "_TUN", "/nonexistent/tun")
    monkeypatch.setattr(net, "container_evidence", lambda: None)
    assert net.step_network_mode(None, build_mode="default", host_allowed=False, where="Dockerfile:2") == "default"
    with pytest.raises(net.NetworkError, match="needs /nonexistent/tun"), net.StepNetwork("default"):
        pass
