"""The builder host's own addresses, and HTTP connections made only to addresses that were checked.

wharfie fetches on the host, with the host's network, from URLs that
untrusted input chose: an `ADD <url>` of the Dockerfile, and every redirect,
token realm and upload `Location` a registry answers (the Dockerfile names
the registry). A URL that leads to the host itself reaches services that keep
to the host (a registry's admin port on 127.0.0.1, a cloud metadata service
on 169.254.169.254): a server-side request forgery. This module is the one
rule for "is this address the host's own", shared by ADD's downloads
(builder/steps/fetch_guard.py) and the registry client
(registry/destinations.py), which each decide what to allow with it.

The host's own, by kind: loopback, link-local, unspecified (0.0.0.0 and
0.x.y.z, which Linux connects to this host), multicast, the cloud metadata
services that live outside link-local (AWS's and GCP's IPv6 ones,
Alibaba's 100.100.100.200), the IPv4-mapped IPv6 forms of these, and every address of this host's interfaces (a service bound
to 0.0.0.0 answers on those too; an address is the host's when a socket can
be bound to it).

A check made before a connection is worth nothing if the connection then
resolves the name again (DNS rebinding: the first answer is harmless, the
second 127.0.0.1). So the check is made where each connection is made: an
httpcore network backend asks a `vet` function for the addresses of the host
it is told to reach, and connects only to those. httpx takes no network
backend of its own, so `guarded_transport` replaces its transport's pool by
the same pool on that backend (httpcore's public `network_backend` option).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from enum import Enum

import httpcore
import httpx

from oci.errors import WharfieError

__all__ = [
    "CLOUD_METADATA",
    "GuardedBackend",
    "OwnKind",
    "RefusedDestination",
    "Vet",
    "guarded_transport",
    "own_address_kind",
    "resolve",
]

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # 0.x.y.z: "this host" to Linux, like 0.0.0.0

Vet = Callable[[str, int], list[str]]
"""(host, port) -> the addresses a connection to it may use; raises `RefusedDestination` to refuse it."""


class RefusedDestination(WharfieError):
    """A URL that untrusted input chose leads to one of the builder host's own addresses."""


class OwnKind(Enum):
    """Which of the host's own addresses an address is; the value says why it is the host's."""

    LOOPBACK = "a loopback address"
    LINK_LOCAL = "a link-local address (cloud metadata services live there)"
    UNSPECIFIED = "an unspecified address (it reaches this host)"
    MULTICAST = "a multicast address"
    METADATA = "a cloud metadata service's address"
    INTERFACE = "an address of this host"


# Cloud metadata services outside the link-local range (each hands out the machine's credentials):
# AWS's IMDS over IPv6, GCP's over IPv6, Alibaba's (whose first API version needs no token).
CLOUD_METADATA = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "fd20:ce::254", "100.100.100.200"))


def _parse(address: str) -> _Address:
    parsed = ipaddress.ip_address(address.partition("%")[0])  # a scoped fe80::1%eth0 is still link-local
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped  # ::ffff:127.0.0.1 connects to 127.0.0.1
    return parsed


def _is_this_hosts(parsed: _Address) -> bool:
    family = socket.AF_INET6 if parsed.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(parsed), 0))
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EINVAL, errno.EAFNOSUPPORT):
                return False
            raise
    return True


def own_address_kind(address: str) -> OwnKind | None:
    """Which of the builder host's own addresses `address` (an IP literal) is, or None when it is not one."""
    parsed = _parse(address)
    if parsed.is_loopback:
        return OwnKind.LOOPBACK
    if parsed.is_link_local:
        return OwnKind.LINK_LOCAL
    if parsed.is_unspecified or (parsed.version == 4 and parsed in _THIS_NETWORK):
        return OwnKind.UNSPECIFIED
    if parsed.is_multicast:
        return OwnKind.MULTICAST
    if parsed in CLOUD_METADATA:
        return OwnKind.METADATA
    if _is_this_hosts(parsed):
        return OwnKind.INTERFACE
    return None


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` (a name or an IP literal, brackets allowed) resolves to, in order, each once.

    Raises socket.gaierror when it resolves to none."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.SyncBackend):
    """Connects only to the addresses `vet` returned for the host (tried in order)."""

    def __init__(self, vet: Vet) -> None:
        self._vet = vet

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        failure: httpcore.ConnectError | None = None
        try:
            addresses = self._vet(host, port)  # RefusedDestination leaves through httpx as it is
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from None
        for address in addresses:
            try:
                # TLS still names `host` (SNI, certificate check): httpcore takes it from the URL, not from here.
                return super().connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                           socket_options=socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"{host} resolves to no address")


def guarded_transport(vet: Vet, *, verify: ssl.SSLContext | bool = True,
                      limits: httpx.Limits | None = None) -> httpx.HTTPTransport:
    """An httpx transport whose every connection goes through `GuardedBackend(vet)`."""
    limits = limits or httpx.Limits()
    transport = httpx.HTTPTransport(verify=verify, limits=limits)
    context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
    # The same pool httpx builds (its settings for HTTP/1.1), on our backend.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=context, max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(vet))
    return transport
