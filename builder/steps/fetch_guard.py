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

The check is made where each connection is made: the network backend of
oci/own_addresses.py (the one rule for "is this address the host's own",
shared with the registry client) resolves the name, and this guard refuses it
when any address it resolves to is the host's; only the checked addresses are
connected to, so neither a redirect nor a DNS answer that changes between a
check and the connection (rebinding) gets past it. Each hop's host is also
checked by name before its request is sent, which is the only check when a
proxy from the environment (HTTP_PROXY, ...) is used, since the proxy then
resolves the name.
"""

from __future__ import annotations

import socket
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from oci.own_addresses import RefusedDestination, guarded_transport, own_address_kind, resolve
from oci.tls_trust import https_context

__all__ = ["FetchGuard", "RefusedDestination"]


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
            kind = None if address in self.outside else own_address_kind(address)
            if kind is not None:
                shown = host if host == address else f"{host} ({address})"
                raise RefusedDestination(f"refused to download from {shown}: {kind.value}; a Dockerfile may not "
                                         "reach the builder host's own services (build with --network=host "
                                         "to allow it)")

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses `host` resolves to, each checked (socket.gaierror when it resolves to none)."""
        addresses = resolve(host, port)
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
                            transport=guarded_transport(self.resolve, verify=https_context()))

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
