"""A RUN step's network: a namespace of its own reaching out through slirp4netns, the host's, or none.

Modes, with docker's names:
- `default`: the step gets a network namespace of its own whose only way out
  is slirp4netns, a user-mode TCP/IP stack (libslirp) attached to a tap
  device in that namespace. Outbound TCP/UDP and DNS work (`apt-get install`
  does); the step has address 10.0.2.100, gateway 10.0.2.2 and a DNS
  forwarder at 10.0.2.3. With `--disable-host-loopback` the gateway does
  not lead to the host's 127.0.0.1, so services the host keeps to itself (a
  local registry, wharfie's own helpers) are out of reach; a raw socket sees
  only the step's own traffic, and a port the step binds is bound in its own
  namespace, not on the host. The host's other addresses (a service bound to
  0.0.0.0 answers on its eth0 address too) get `unreachable` routes in the
  step's namespace before the step starts (builder/execution/host_fence.py).
- `host`: the host's network, as kaniko gave every step. Only when the person
  running the build asks for it (`--network=host`, or `--allow network.host`
  to let the Dockerfile's `RUN --network=host` through, BuildKit's
  entitlement): the Dockerfile alone cannot choose it.
- `none`: a namespace of its own with no interface but a loopback.

Why slirp4netns: it connects a namespace to the outside from an ordinary
process, the same as root and rootless, with no bridge, veth pair or
firewall rule on the host to create and clean up. BuildKit's rootless mode
and Podman use it. pasta would serve too; one mechanism is enough.

The handshake, without sleeps: sandbox_enter (the first process in the new
namespaces, builder/execution/sandbox_enter.py) writes one byte on a pipe as soon as it
runs, which proves `unshare` has made the namespace, then waits on a second
pipe. The host starts slirp4netns on unshare's pid with `--ready-fd`, reads
its byte (the tap device is configured), fences the host's addresses off the
namespace, and writes the go byte. slirp4netns
exits when its `--exit-fd` closes: when the step ends, or when wharfie dies.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

from builder.execution.host_fence import FenceError, fence_host_addresses, fence_missing, host_local_prefixes, is_fenced
from builder.execution.isolation import container_evidence
from oci.errors import WharfieError

__all__ = ["NETWORK_MODES", "SLIRP_DNS", "NetworkError", "NetworkMode", "StepNetwork", "step_network_mode",
           "step_resolv_conf"]

log = logging.getLogger("wharfie")

NetworkMode = Literal["default", "host", "none"]
NETWORK_MODES: tuple[NetworkMode, ...] = ("default", "host", "none")
_MODES: dict[str, NetworkMode] = {mode: mode for mode in NETWORK_MODES}
SLIRP_DNS = "10.0.2.3"
# Where systemd-resolved names the real upstream servers when the host's resolv.conf points at its
# 127.0.0.53 stub (docker reads the same file): those stay reachable through slirp's NAT.
_RESOLVED_UPSTREAM = Path("/run/systemd/resolve/resolv.conf")
_TUN = "/dev/net/tun"  # slirp4netns makes its tap device through it, inside the step's namespace
_EXIT_GRACE_SECONDS = 10  # slirp4netns exits at once when its exit fd closes; this only bounds a hung one


class NetworkError(WharfieError):
    """A step's network could not be set up, or the Dockerfile asked for one it may not have."""


def step_network_mode(requested: str | None, *, build_mode: str, host_allowed: bool, where: str) -> NetworkMode:
    """The network a RUN step gets: its own `--network`, else the build's (`default` means the build's).

    `RUN --network=host` is honoured only when the build allows the host network
    (`--network=host` or `--allow network.host`), as BuildKit's entitlement.
    `where` (file:line) is for the log; the caller puts it in front of an error.
    """
    chosen = build_mode if requested in (None, "default") else requested
    mode = _MODES.get(chosen or "")
    if mode is None:
        raise NetworkError(f"unsupported network mode {chosen!r}")
    if mode == "host" and requested == "host" and not (host_allowed or build_mode == "host"):
        raise NetworkError("RUN --network=host is not allowed: the host's network is the builder's to "
                           "give (pass --allow network.host, or --network=host for every step)")
    if mode == "default" and (missing := default_network_missing()) and (container := container_evidence()):
        # A job container (GitLab's docker or podman executor) has a network namespace of its
        # own already and, by docker's device list, no /dev/net/tun: its network is what kaniko
        # gave every step there. Refusing would leave every RUN of every such job failing.
        _warn_container_network(missing, container)
        return "host"
    if mode == "host":
        log.info("  %s: RUN uses the host's network (--network=host)", where)
    else:
        log.debug("  %s: network %s", where, "own namespace via slirp4netns, host loopback unreachable"
                  if mode == "default" else "none (own namespace, loopback only)")
    return mode


def default_network_missing() -> str | None:
    """Why the `default` network cannot be made here (slirp4netns or a usable /dev/net/tun missing), or None."""
    if shutil.which("slirp4netns") is None:
        return "slirp4netns, which is not installed (apt-get install slirp4netns)"
    if not os.access(_TUN, os.R_OK | os.W_OK):
        return f"slirp4netns, which needs {_TUN} ({_why_no_tun()}); make it usable (udev gives it mode 0666)"
    return fence_missing()


@functools.cache
def _warn_container_network(missing: str, container: str) -> None:
    log.warning("warning: RUN steps use this container's own network (%s): a network of their own needs %s; "
                "pass --network=host to say so", container, missing)


def step_resolv_conf(mode: str, host_text: str) -> str:
    """The step's /etc/resolv.conf: the host's, or with the default network the slirp DNS forwarder.

    `search` and `options` lines are kept, as docker keeps them. When the host
    resolves through a loopback stub (systemd-resolved's 127.0.0.53), which the
    step cannot reach, the stub's upstream servers are named instead, as docker does.
    """
    if mode != "default":
        return host_text
    kept = [line for line in host_text.splitlines() if line.split()[:1] in (["search"], ["domain"], ["options"])]
    servers = [SLIRP_DNS]
    if _all_loopback(host_text) and _RESOLVED_UPSTREAM.exists():
        # A server on one of the host's own addresses is fenced off the step (host_fence.py): the forwarder serves.
        upstream = [s for s in _nameservers(_RESOLVED_UPSTREAM.read_text())
                    if not ipaddress.ip_address(s).is_loopback and not is_fenced(s)]
        servers = upstream or servers
    return "".join(f"nameserver {server}\n" for server in servers) + "".join(f"{line}\n" for line in kept)


def _nameservers(text: str) -> list[str]:
    servers = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                ipaddress.ip_address(fields[1].split("%")[0])
            except ValueError:
                continue
            servers.append(fields[1].split("%")[0])
    return servers


def _all_loopback(text: str) -> bool:
    servers = _nameservers(text)
    return bool(servers) and all(ipaddress.ip_address(s).is_loopback for s in servers)


def _why_no_tun() -> str:
    try:
        mode = os.stat(_TUN).st_mode & 0o777
    except OSError as exc:
        return exc.strerror or "missing"
    return f"mode {mode:04o}, not usable by this user"


class StepNetwork:
    """One step's network, as a context manager around the sandbox's process.

    Use: `unshare_flags` go on unshare's command line, `pass_fds` to its Popen,
    `enter_spec` into sandbox_enter's JSON spec; once the process is started,
    `attach(pid)` connects the namespace. Leaving stops slirp4netns.
    """

    def __init__(self, mode: str) -> None:
        if mode not in NETWORK_MODES:
            raise NetworkError(f"unsupported network mode {mode!r}")
        self.mode = mode
        self._fds: dict[str, int] = {}
        self._slirp: subprocess.Popen[bytes] | None = None
        self._slirp_log: IO[bytes] | None = None
        self._slirp_binary: str | None = None

    @property
    def unshare_flags(self) -> list[str]:
        return [] if self.mode == "host" else ["--net"]

    @property
    def pass_fds(self) -> tuple[int, ...]:
        """The pipe ends the sandbox's first process inherits (none unless slirp4netns is attached)."""
        return tuple(self._fds[name] for name in ("child_ready", "child_go") if name in self._fds)

    @property
    def enter_spec(self) -> dict[str, object]:
        if self.mode != "default":
            return {}
        return {"network_sync": {"ready_fd": self._fds["child_ready"], "go_fd": self._fds["child_go"]}}

    def __enter__(self) -> Self:
        if self.mode == "default":
            # An absolute path, fixed before anything of the build runs: never a program the build could place.
            missing = default_network_missing()
            if missing is not None:
                raise NetworkError(f"RUN steps get a network of their own through {missing}, "
                                   "or pass --network=host or --network=none")
            try:
                host_local_prefixes()  # read in the host's namespace, once per build (host_fence.py)
            except FenceError as exc:
                raise NetworkError(f"cannot read the host's own addresses to fence them off the step: {exc}") from None
            # An absolute path, fixed before anything of the build runs: never a program the build could place.
            self._slirp_binary = shutil.which("slirp4netns")
            self._fds["host_ready"], self._fds["child_ready"] = os.pipe()
            self._fds["child_go"], self._fds["host_go"] = os.pipe()
        return self

    def attach(self, pid: int) -> None:
        """Connect the namespace of `pid` (unshare, started with `pass_fds`) and let the step go on.

        When the sandbox's process died before signalling, nothing is attached: its
        exit code and output tell why. When slirp4netns fails, the step is told to
        stop (it exits 125) and NetworkError says why.
        """
        if self.mode != "default":
            return
        self._close("child_ready", "child_go")  # the child's ends: ours must go, or a dead child would never EOF
        if os.read(self._fds["host_ready"], 1) != b"1":
            return
        ready_read, ready_write = os.pipe()
        exit_read, self._fds["exit"] = os.pipe()
        self._slirp_log = tempfile.TemporaryFile(prefix="wharfie-slirp-")  # noqa: SIM115 (closed in __exit__)
        try:
            assert self._slirp_binary is not None
            self._slirp = subprocess.Popen(
                [self._slirp_binary, "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox",
                 "--enable-seccomp", f"--ready-fd={ready_write}", f"--exit-fd={exit_read}", str(pid), "tap0"],
                pass_fds=(ready_write, exit_read), stdin=subprocess.DEVNULL, stdout=self._slirp_log,
                stderr=subprocess.STDOUT)
        finally:
            os.close(ready_write)
            os.close(exit_read)
        with os.fdopen(ready_read, "rb") as ready:
            up = ready.read(1) == b"1"
        if not up:
            self._close("host_go")  # the step reads EOF and stops
            raise NetworkError(f"cannot set up the step's network: slirp4netns: {self._slirp_failure()}")
        try:
            fenced = fence_host_addresses(pid)
        except FenceError as exc:
            self._close("host_go")
            raise NetworkError(f"cannot fence the host's own addresses off the step's network: {exc}") from None
        log.debug("sandbox: network: %d of the host's own addresses fenced off by unreachable routes%s",
                  len(fenced), f": {', '.join(fenced)}" if fenced else "")
        os.write(self._fds["host_go"], b"1")
        self._close("host_go")

    def _slirp_failure(self) -> str:
        assert self._slirp is not None and self._slirp_log is not None
        code = self._stop_slirp()
        self._slirp_log.seek(0)
        lines = [line.strip() for line in self._slirp_log.read().decode(errors="replace").splitlines()
                 if line.strip() and not line.startswith("WARNING:")]
        return "; ".join(dict.fromkeys(lines)) if lines else f"exit {code}"

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._close(*list(self._fds))  # the exit fd among them: slirp4netns ends now
        if self._slirp is not None:
            self._stop_slirp()
            self._slirp = None
        if self._slirp_log is not None:
            self._slirp_log.close()
            self._slirp_log = None

    def _stop_slirp(self) -> int:
        assert self._slirp is not None
        try:
            return self._slirp.wait(timeout=_EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._slirp.kill()
            return self._slirp.wait()

    def _close(self, *names: str) -> None:
        for name in names:
            fd = self._fds.pop(name, None)
            if fd is not None:
                os.close(fd)
