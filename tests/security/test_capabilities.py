"""Issue #10 point 5 and the `-v debug` report: a step holds docker's capabilities, whatever wharfie inherited.

Started with an inheritable and ambient CAP_SYS_ADMIN (as some CI runners
hand their jobs), wharfie used to pass it on: only the bounding set was cut,
and the inheritable set survives exec. The step's /proc/self/status must
read as under `docker run` (root: CapPrm = CapEff = CapBnd = 00000000a80425fb,
nothing inheritable or ambient; another user: nothing but the bounding set),
and what `-v debug` prints must say the same. On the default network (its own namespace, slirp4netns)
root holds that set less net_raw (00000000a80405fb, as under podman): with it the step could write its own
frames to the tap device, past the routes that fence the host's addresses off (an AF_PACKET socket is
refused there; root may still ping through ICMP datagram sockets, as under podman).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from attack import REPO_ROOT, Attacker

# `docker run busybox grep Cap /proc/self/status` (moby's default capability set).
DOCKER_ROOT = {"CapInh": "0000000000000000", "CapPrm": "00000000a80425fb", "CapEff": "00000000a80425fb",
               "CapBnd": "00000000a80425fb", "CapAmb": "0000000000000000"}
DOCKER_USER = {**DOCKER_ROOT, "CapPrm": "0000000000000000", "CapEff": "0000000000000000"}
FENCED_ROOT = {**DOCKER_ROOT, "CapPrm": "00000000a80405fb", "CapEff": "00000000a80405fb", "CapBnd": "00000000a80405fb"}
SHOW = "grep -E '^(Cap|NoNewPrivs)' /proc/self/status | sed 's/^/{who} /'"


def _sets(output: str, who: str) -> dict[str, str]:
    rows = [line.split()[1:] for line in output.splitlines() if line.startswith(f"{who} ")]
    return {key.rstrip(":"): value for key, value in rows}


def _dockerfile(base: str) -> str:
    return (f"FROM {base}\n"
            f"RUN {SHOW.format(who='as-root')}\n"
            "USER nobody\n"
            f"RUN {SHOW.format(who='as-nobody')}\n")


def _check(output: str) -> None:
    root, nobody = _sets(output, "as-root"), _sets(output, "as-nobody")
    assert {k: root[k] for k in DOCKER_ROOT} == DOCKER_ROOT, output
    assert {k: nobody[k] for k in DOCKER_USER} == DOCKER_USER, output
    assert root["NoNewPrivs"] == nobody["NoNewPrivs"] == "1"


def test_a_step_holds_dockers_capabilities(attacker: Attacker, busybox_ref: str) -> None:
    result = attacker.build(attacker.context(_dockerfile(busybox_ref)), "-v", "debug", "--network=none")
    assert result.returncode == 0, result.stderr
    _check(result.stderr)
    # The debug report says what the step really got.
    reported = next(line for line in result.stderr.splitlines() if "sandbox: capabilities:" in line)
    assert f"bounding={DOCKER_ROOT['CapBnd'][-16:]}" in reported and "inheritable=0000000000000000" in reported
    assert f"permitted=effective={DOCKER_ROOT['CapEff']}" in reported and "no_new_privs=1" in reported


def test_inherited_sys_admin_does_not_reach_the_step(busybox_ref: str, registry_open, tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.skip("raising an inheritable capability needs root")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(_dockerfile(busybox_ref))
    command = ["setpriv", "--inh-caps=+sys_admin", "--ambient-caps=+sys_admin", "--", sys.executable, "-m",
               "builder", "build", str(context), "--no-push", "--isolation", "sandbox", "--network=none",
               "--insecure-registry",
               registry_open.host, "--cache-dir", str(tmp_path / "cache")]
    probe = subprocess.run([*command[:4], "grep", "CapAmb", "/proc/self/status"], capture_output=True, text=True,
                           check=False)
    assert probe.stdout.split()[1] == "0000000000200000", "setpriv did not hand down CAP_SYS_ADMIN"
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    _check(result.stderr)


def test_on_the_default_network_a_step_has_no_net_raw(attacker: Attacker, busybox_ref: str) -> None:
    """No packet socket to write frames past the fence with; root may ping through ICMP datagram sockets
    (iputils' ping falls back to them; busybox's does not, as under podman and buildah, which drop net_raw too)."""
    context = attacker.context(
        f"FROM {busybox_ref}\n"
        f"RUN {SHOW.format(who='as-root')}\n"
        "RUN arping -c 1 -w 1 -I tap0 10.0.2.2 2>&1 | sed 's/^/arping: /'; "
        "sed 's/^/ping_group_range: /' /proc/sys/net/ipv4/ping_group_range\n")
    result = attacker.build(context, "-v", "debug", own_network=True)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "sandbox: network: default" in lines, result.stderr
    root = _sets(result.stderr, "as-root")
    assert {k: root[k] for k in FENCED_ROOT} == FENCED_ROOT, result.stderr
    reported = next(line for line in lines if "sandbox: capabilities:" in line)
    assert f"permitted=effective={FENCED_ROOT['CapEff']}" in reported and "net_raw" not in reported
    assert any(line.startswith("arping: ") and "Operation not permitted" in line for line in lines), result.stderr
    assert "ping_group_range: 0\t0" in lines, result.stderr
