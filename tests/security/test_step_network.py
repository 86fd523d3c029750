"""A hostile RUN step against the host's network, in real builds, as root and rootless.

The attack: the test registry listens on the host's 127.0.0.1 only, as many
local services do (a registry, a credential helper, a metadata proxy). A step
that reaches it can read or overwrite images with the builder's access. By
default the step must not reach it, neither directly nor through slirp's
gateway; `--network=host` (the builder's explicit choice) is the control
showing the probe would see it. A Dockerfile cannot take the host's network
by itself: `RUN --network=host` needs `--allow network.host`.
(tests/sandbox/test_network.py covers ports, raw sockets and DNS step by step.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from builder.execution.isolation import container_evidence
from fixtures.readback import run_wharfie
from fixtures.registry import Registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "isolation"))  # the throwaway-user helper lives there
from attack import USABLE_TUN, tun_usable_by_others
from rootless_user import throwaway_user, userns_forbidden_reason

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds as root, and makes a user for the rootless case")


def _probe(registry: Registry) -> str:
    port = registry.host.rsplit(":", 1)[1]
    # (busybox's `wget -T` crashes: its own refusal message shows the probe really ran)
    return (f"(wget -q -O /dev/null http://{registry.host}/v2/ && echo 'loopback: REACHED' "
            "|| echo 'loopback: blocked'); "
            f"(wget -q -O /dev/null http://10.0.2.2:{port}/v2/ && echo 'gateway: REACHED' "
            "|| echo 'gateway: blocked')")


def _refused(lines: list[str]) -> bool:
    """Both probes ran and were turned away by the network, not by a crash."""
    return ("loopback: blocked" in lines and "gateway: blocked" in lines
            and "wget: can't connect to remote host (127.0.0.1): Connection refused" in lines
            and any(line.startswith("wget: can't connect to remote host (10.0.2.2): ") for line in lines))


def _context(root: Path, text: str, owner: tuple[int, int] | None = None) -> Path:
    context = root / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(text)
    if owner is not None:
        for path in (context, context / "Dockerfile"):
            os.chown(path, *owner)
    return context


def _build(context: Path, registry: Registry, cache: Path, *flags: str):
    return run_wharfie("build", str(context), "--no-push", "--insecure-registry", registry.host,
                       "--cache-dir", str(cache), "--isolation", "sandbox", *flags)


def test_a_step_cannot_reach_the_hosts_loopback(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    context = _context(tmp_path, f"FROM {busybox_ref}\nRUN {_probe(registry_open)}\n")
    result = _build(context, registry_open, tmp_path / "cache", "-v", "debug")
    assert result.returncode == 0, result.stderr
    assert _refused(result.stderr.splitlines()), result.stderr
    assert "Dockerfile:2: network own namespace via slirp4netns, host loopback unreachable" in result.stderr

    host = _build(context, registry_open, tmp_path / "cache", "--network=host", "-v", "debug")
    assert host.returncode == 0, host.stderr
    assert "loopback: REACHED" in host.stderr.splitlines(), "the control: with the host's network the probe reaches it"
    assert "RUN uses the host's network (--network=host)" in host.stderr


def test_the_dockerfile_cannot_choose_the_host_network(registry_open: Registry, busybox_ref: str,
                                                       tmp_path: Path) -> None:
    context = _context(tmp_path, f"FROM {busybox_ref}\n\nRUN --network=host {_probe(registry_open)}\n")
    refused = _build(context, registry_open, tmp_path / "cache")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "loopback: REACHED" not in refused.stderr.splitlines()
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("wharfie: error: Dockerfile:3: RUN --network=host is not allowed"), refused.stderr
    assert "--allow network.host" in last

    allowed = _build(context, registry_open, tmp_path / "cache", "--allow", "network.host")
    assert allowed.returncode == 0, allowed.stderr
    assert "loopback: REACHED" in allowed.stderr.splitlines()


def _rootless_builds(registry: Registry, busybox_ref: str, prelude: str):
    reason = userns_forbidden_reason()
    if reason is not None:
        print(f"skipping rootless network test: {reason}")
        pytest.skip(reason)
    with throwaway_user(subids=True) as user:
        context = _context(user.home, f"FROM {busybox_ref}\nRUN {_probe(registry)}; cat /etc/resolv.conf\n",
                           owner=(user.uid, user.gid))
        args = ["build", str(context), "--no-push", "--insecure-registry", registry.host,
                "--cache-dir", str(user.home / "cache")]
        # This checkout's wharfie, not whichever one is installed.
        env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        default = user.run(args, env=env, prelude=prelude)
        host = user.run([*args, "--network=host"], env=env, prelude=prelude)
    assert host.returncode == 0, host.stderr
    assert "loopback: REACHED" in host.stderr.splitlines(), "the control: with the host's network the probe reaches it"
    return default


def test_rootless_steps_cannot_reach_the_hosts_loopback(registry_open: Registry, busybox_ref: str) -> None:
    result = _rootless_builds(registry_open, busybox_ref, "" if tun_usable_by_others() else USABLE_TUN)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert _refused(lines), result.stderr
    assert "nameserver 10.0.2.3" in lines


def test_rootless_without_a_usable_tun(registry_open: Registry, busybox_ref: str) -> None:
    """No usable /dev/net/tun: a one-line error, or in a container (a GitLab job) the container's network, said."""
    if tun_usable_by_others():
        pytest.skip("/dev/net/tun is usable by every user here: nothing to refuse")
    result = _rootless_builds(registry_open, busybox_ref, "")
    container = container_evidence()
    if container is not None:
        assert result.returncode == 0, result.stderr
        warning = [line for line in result.stderr.splitlines() if "container's own network" in line]
        assert len(warning) == 1 and container in warning[0] and "/dev/net/tun (mode 0600" in warning[0], \
            result.stderr
        return
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert not any(line.startswith(("loopback:", "gateway:")) for line in result.stderr.splitlines()), \
        "the step must not run without its network"
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wharfie: error: Dockerfile:2: RUN steps get a network of their own through slirp4netns, "
                           "which needs /dev/net/tun (mode 0600, not usable by this user)"), last
    assert "or pass --network=host or --network=none" in last
