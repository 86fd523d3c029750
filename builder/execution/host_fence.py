"""The host's own addresses, fenced off a RUN step's slirp4netns network by `unreachable` routes.

slirp4netns makes a step's connections with connect() in the host's network
namespace. `--disable-host-loopback` keeps slirp's gateway (10.0.2.2) from
leading to the host's 127.0.0.1, but a step connecting to one of the host's
own interface addresses (`wget http://<host eth0 address>:PORT`) goes out
through slirp's NAT, from the host, to the host: every service bound to
0.0.0.0 (sshd, a registry, a database) would answer it. So, once slirp4netns
has configured the step's namespace and before the step's program starts,
every address the host delivers to itself gets a route of type
`unreachable` in the step's namespace: a connect() there fails at once with
EHOSTUNREACH, and nothing reaches slirp.

Which addresses: the `local` routes of the host's `local` routing table,
IPv4 and IPv6. That table is the kernel's own answer to "is this address
this host's" (it is what makes bind() to an address succeed, the rule
oci/own_addresses.py applies to ADD's and the registry's destinations), so
it holds every interface address, up or not yet, and AnyIP ranges too.
Left out: loopback (127.0.0.0/8 and ::1 in the step's namespace are its own
`lo`; 10.0.2.2 is refused by --disable-host-loopback), and any address inside
slirp's own 10.0.2.0/24 (a host on such a network, VirtualBox's NAT gives
10.0.2.15, must not lose the step's gateway, DNS forwarder or own address;
slirp never forwards an address of its own network to the host anyway).
Read once per build, in the host's namespace, before any sandbox exists.
IPv4's link-local range (169.254.0.0/16), and the IPv4 metadata addresses
outside it (oci/own_addresses.py's CLOUD_METADATA), are fenced too, whatever the table
says: a cloud machine's metadata service (169.254.169.254) hands whoever
asks the machine's own credentials, a runner's included (ADD's downloads
refuse it for the same reason, builder/steps/fetch_guard.py). docker's
bridge lets a step reach it; a build that must, asks for `--network=host`.

Why the routes hold: the step runs without CAP_NET_ADMIN (docker's default
set, builder/execution/capabilities.py) and docker's seccomp profile denies
it a new user namespace, the only way to regain it; its `ip route del` fails
with EPERM. Routing needs no kernel module (nftables would), so this works
rootless and inside a CI job's container alike. `--network=host` and
`--network=none` get no fence (the first is the builder's explicit choice,
the second has no way out), and in-place isolation has no namespace of its
own to fence: it is the job container's network, as kaniko's steps had.

How: iproute2's `ip`, the host's own binary, run through util-linux
`nsenter --net` into the namespace of the sandbox's first process (the same
process slirp4netns attaches to). No netlink library is a dependency, and a
hand-written netlink encoder would be a second mechanism to keep right; `ip`
reads the local table as JSON and adds every route in one `-batch`. Both
programs are found once at start-up, on wharfie's own PATH plus the system's
sbin directories (`ip` lives in /usr/sbin, off most users' PATH), never on a
path the build controls; `nsenter` runs before the step's program exists.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Iterable

from oci.errors import WharfieError
from oci.own_addresses import CLOUD_METADATA

__all__ = ["LINK_LOCAL", "SLIRP_NETWORK", "FenceError", "fence_host_addresses", "fence_missing", "host_local_prefixes",
           "is_fenced", "prefixes_to_fence"]

SLIRP_NETWORK = ipaddress.IPv4Network("10.0.2.0/24")  # slirp4netns' default network: gateway .2, DNS .3, step .100
LINK_LOCAL = "169.254.0.0/16"  # cloud metadata services: the machine's credentials
# The IPv4 ones outside it (slirp carries IPv4 only): the same list ADD and the registry client refuse.
_METADATA = tuple(f"{a}/32" for a in sorted(map(str, CLOUD_METADATA)) if ":" not in a)
_SEARCH = os.pathsep.join(filter(None, [os.environ.get("PATH"), "/usr/sbin:/sbin:/usr/bin:/bin"]))
# Fixed at start-up, before anything of a build exists: never looked up again.
_IP = shutil.which("ip", path=_SEARCH)
_NSENTER = shutil.which("nsenter", path=_SEARCH)
_TIMEOUT_SECONDS = 30


class FenceError(WharfieError):
    """The host's addresses could not be read, or fenced off a step's network."""


def fence_missing() -> str | None:
    """What the fence needs and this host lacks (for the network's own "missing" message), or None."""
    if _IP is None:
        return "iproute2's ip, which is not installed (apt-get install iproute2)"
    if _NSENTER is None:
        return "util-linux's nsenter, which is not installed"
    return None


def _run(argv: list[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False,
                              timeout=_TIMEOUT_SECONDS, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FenceError(f"{os.path.basename(argv[0])}: {exc}") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        raise FenceError("; ".join(dict.fromkeys(lines)) or f"{os.path.basename(argv[0])} exited {done.returncode}")
    return done.stdout


def prefixes_to_fence(destinations: Iterable[str]) -> tuple[str, ...]:
    """The host's local route destinations that get a fence: loopback and slirp's own network left out, each once."""
    fenced = []
    for destination in destinations:
        network = ipaddress.ip_network(destination, strict=False)
        if network.is_loopback or (isinstance(network, ipaddress.IPv4Network) and network.subnet_of(SLIRP_NETWORK)):
            continue
        fenced.append(str(network))
    return tuple(dict.fromkeys(fenced))


@functools.cache
def host_local_prefixes() -> tuple[str, ...]:
    """The prefixes this host delivers to itself (its `local` routes), loopback and slirp's network left out,
    and IPv4's link-local range (cloud metadata).

    Read once per process, that is once per build, in the namespace wharfie runs in: the host's.
    """
    if _IP is None:
        raise FenceError(fence_missing() or "")
    destinations: list[str] = []
    for family in ("-4", "-6"):
        if family == "-6" and not os.path.exists("/proc/net/if_inet6"):
            continue  # IPv6 is off in this kernel: the host has no IPv6 address to fence
        shown = _run([_IP, "-j", family, "route", "show", "table", "local", "type", "local"])
        try:
            destinations += [str(route["dst"]) for route in json.loads(shown or "[]")]
        except (ValueError, KeyError, TypeError) as exc:
            raise FenceError(f"cannot read the host's local routes from ip: {exc}") from None
    try:
        return prefixes_to_fence([*destinations, LINK_LOCAL, *_METADATA])
    except ValueError as exc:
        raise FenceError(f"cannot read the host's local routes from ip: {exc}") from None


def is_fenced(address: str) -> bool:
    """Whether a step on the default network finds `address` (an IP literal) fenced off."""
    parsed = ipaddress.ip_address(address.partition("%")[0])
    return any(parsed in ipaddress.ip_network(prefix) for prefix in host_local_prefixes())


def fence_host_addresses(pid: int) -> tuple[str, ...]:
    """Add an `unreachable` route for each of the host's own prefixes in the network namespace of `pid`.

    Returns the prefixes fenced. Call it after slirp4netns has configured
    the namespace and before the step's program starts.
    """
    prefixes = host_local_prefixes()
    if not prefixes:
        return prefixes
    if _IP is None or _NSENTER is None:
        raise FenceError(fence_missing() or "")
    batch = "".join(f"route add unreachable {prefix}\n" for prefix in prefixes)
    _run([_NSENTER, f"--net=/proc/{pid}/ns/net", "--", _IP, "-batch", "-"], stdin=batch)
    return prefixes
