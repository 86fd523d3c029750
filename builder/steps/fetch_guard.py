"""Where ADD may download from: never from the builder host's own services.

`ADD <url>` is fetched by wharfie itself, on the host and with the host's
network, whatever network the RUN steps get. The Dockerfile is untrusted:
`ADD http://127.0.0.1:5000/v2/_catalog`, a name that resolves to the
loopback, `http://169.254.169.254/` (a cloud metadata service handing out
credentials) or a redirect to any of them would copy into the image what a
host service keeps to the host: a server-side request forgery. (BuildKit
fetches from its daemon's network; wharfie's promise is stricter.)

Refused: loopback, link-local, unspecified and multicast addresses, the
IPv4-mapped IPv6 forms of these, and every address of this host's own
interfaces (a service bound to 0.0.0.0 answers on those too; an address
is the host's when a socket can be bound to it). Allowed when the build runs
with `--network=host`: the builder's explicit choice to give it the host's
network.

The check is made where each connection is made: an httpcore network backend
resolves the name, refuses it when any address it resolves to is refused, and
connects only to the addresses it checked, so neither a redirect nor a DNS
answer that changes between a check and the connection (rebinding) gets
past it. Each hop's host is also checked by name before its request is
sent, which is the only check when a proxy from the environment (HTTP_PROXY,
...) is used, since the proxy then resolves the name.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpcore
import httpx

from oci.errors import WharfieError
from registry.tls_trust import https_context

__all__ = ["FetchGuard", "RefusedDestination"]

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # 0.x.y.z: "this host" to Linux, like 0.0.0.0


class RefusedDestination(WharfieError):
    """A URL whose host is one of the builder host's own addresses."""


def _parse(address: str) -> _Address:
    parsed = ipaddress.ip_address(address.partition("%")[0])  # a scoped fe80::1%eth0 is still link-local
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped  # ::ffff:127.0.0.1 connects to 127.0.0.1
    return parsed


def _is_this_hosts(address: str, parsed: _Address) -> bool:
    family = socket.AF_INET6 if parsed.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EINVAL, errno.EAFNOSUPPORT):
                return False
            raise
    return True


def _why_refused(address: str) -> str | None:
    """Why a connection to `address` would reach the builder host itself, or None when it would not."""
    parsed = _parse(address)
    if parsed.is_loopback:
        return "a loopback address"
    if parsed.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if parsed.is_unspecified or (parsed.version == 4 and parsed in _THIS_NETWORK):
        return "an unspecified address (it reaches this host)"
    if parsed.is_multicast:
        return "a multicast address"
    if _is_this_hosts(str(parsed), parsed):
        return "an address of this host"
    return None


@dataclass(frozen=True)
class FetchGuard:
    """Refuses connections to the host's own addresses unless `allow_host` (`--network=host`)."""

    allow_host: bool = False
    # Addresses the caller vouches for as not the host's (the tests' stand-in for a server elsewhere).
    outside: frozenset[str] = field(default_factory=frozenset)

    def check(self, host: str, addresses: Iterable[str]) -> None:
        if self.allow_host:
            return
        for address in addresses:
            reason = None if address in self.outside else _why_refused(address)
            if reason is not None:
                shown = host if host == address else f"{host} ({address})"
                raise RefusedDestination(f"refused to download from {shown}: {reason}; a Dockerfile may not "
                                         "reach the builder host's own services (build with --network=host "
                                         "to allow it)")

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses `host` resolves to, each checked (socket.gaierror when it resolves to none)."""
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        self.check(host, addresses)
        return addresses

    def client(self, url: str, *, timeout: float) -> httpx.Client:
        """An httpx client for downloading `url` (redirects followed, each hop checked)."""
        hooks = {"request": [self._check_request]}
        if self.allow_host:
            return httpx.Client(follow_redirects=True, timeout=timeout, verify=https_context())
        if _proxied(url):  # httpx applies the environment's proxy (and NO_PROXY) itself
            return httpx.Client(follow_redirects=True, timeout=timeout, event_hooks=hooks, verify=https_context())
        return httpx.Client(follow_redirects=True, timeout=timeout, event_hooks=hooks,
                            transport=_GuardedTransport(_GuardedBackend(self)))

    def _check_request(self, request: httpx.Request) -> None:
        """Each hop's host, by name, before the request is sent (what a proxy would resolve)."""
        try:
            self.resolve(request.url.host, request.url.port or (443 if request.url.scheme == "https" else 80))
        except socket.gaierror as exc:
            raise httpx.ConnectError(f"cannot resolve {request.url.host}: {exc.strerror}", request=request) from None


def _proxied(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    return bool(proxies.get(parts.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(parts.hostname or "")


class _GuardedBackend(httpcore.SyncBackend):
    def __init__(self, guard: FetchGuard) -> None:
        self._guard = guard

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        failure: httpcore.ConnectError | None = None
        try:
            addresses = self._guard.resolve(host, port)  # only what was checked is connected to
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                           socket_options=socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"{host} resolves to no address")


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, backend: _GuardedBackend) -> None:
        super().__init__()
        # httpx takes no network backend of its own: its pool is replaced by the same pool on ours.
        self._pool = httpcore.ConnectionPool(ssl_context=https_context(), network_backend=backend)
