"""Where a registry may lead wharfie's requests: never from elsewhere to the builder host's own services.

The registry a reference names is untrusted (a Dockerfile's `FROM` names it),
and so are the URLs its answers choose, which wharfie then requests on the
host: a redirect of a manifest or blob GET, the token realm of a
``WWW-Authenticate: Bearer`` challenge, an upload's ``Location``. One at
``http://127.0.0.1:PORT/any/path?query`` would send the registry's chosen
request to a service that keeps to the host's loopback (a blind server-side
request forgery). This is the registry's side of the rule ADD's downloads
follow; which addresses are the host's own is decided in one place,
oci/own_addresses.py.

A registry that is itself on the host is legitimate (`localhost:5000`, the
whole test bed, a GitLab development kit on a loopback alias) and so are its
realm and redirects there. The rule, per registry host a session talks to
(mirrors and ``--registry-map`` entries are registries of their own;
``--insecure-registry`` changes the scheme, not this):

- The registry's own name is resolved once and its kind fixed: elsewhere
  (none of its addresses is the host's own) or on this host (all are). A name
  that resolves to both is refused: its "elsewhere" address would speak with
  the trust of a local registry.
- A registry on this host is pinned to the addresses first resolved; one
  elsewhere must stay elsewhere. Either way a DNS answer that changes later
  (rebinding) cannot turn an attacker's server into a trusted local registry,
  nor a trusted name into a way to the loopback.
- Another host (a redirect's, a realm's, a Location's, a storage backend's)
  is allowed when none of its addresses is the host's own. When the registry
  itself is on this host: any of the host's own addresses if the registry is
  on the loopback (whoever named it is on this host already: a realm on
  another local address is normal), else only addresses of the registry's own
  kind (a registry on this host's network address answers the network too,
  and has no business sending anyone to the loopback).

The check runs where each connection is made (oci/own_addresses.py's network
backend under every host client), so it covers every request of the client
(redirect hops and token requests included) and connects only to the
addresses it checked.
"""

from __future__ import annotations

import threading

import httpx

from oci.own_addresses import OwnKind, own_address_kind, resolve
from registry.errors import RefusedDestinationError
from registry.reference import api_host

__all__ = ["RegistryDestinations"]

# A registry on one of these is reached from this host alone: it may lead to any of the host's own addresses.
_HOST_ONLY = frozenset({OwnKind.LOOPBACK, OwnKind.UNSPECIFIED})


class RegistryDestinations:
    """The `vet` of one registry host's connections (thread-safe: pushes connect from a pool)."""

    def __init__(self, registry: str) -> None:
        self.registry = registry
        self._host = _bare(httpx.URL(f"http://{api_host(registry)}/").host)
        self._lock = threading.Lock()
        self._kinds: frozenset[OwnKind] | None = None  # None until resolved; empty: elsewhere
        self._pinned: list[str] = []  # a local registry's addresses, the only ones it is reached at

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses a connection to `host` may use; raises `RefusedDestinationError` (socket.gaierror)."""
        if _bare(host) == self._host:
            return self._registry_addresses(host, port)
        registry_kinds = self._registry_kinds(port)
        addresses = resolve(host, port)
        for address in addresses:
            kind = own_address_kind(address)
            if kind is not None and not (registry_kinds & _HOST_ONLY or kind in registry_kinds):
                rule = (f"a registry on {_kind_words(registry_kinds)} may lead only to addresses of that kind"
                        if registry_kinds else "a registry elsewhere may not lead to the builder host's own services")
                raise RefusedDestinationError(
                    f"refused to follow {self.registry} to {_shown(host, port, address)}: {kind.value}; {rule}")
        return addresses

    def _registry_kinds(self, port: int) -> frozenset[OwnKind]:
        with self._lock:
            if self._kinds is None:
                addresses = resolve(self._host, port)
                kinds = [own_address_kind(address) for address in addresses]
                if None in kinds and any(kinds):
                    local = next(a for a, k in zip(addresses, kinds) if k is not None)
                    raise RefusedDestinationError(
                        f"refused to reach {self.registry}: its name resolves both elsewhere and to this host "
                        f"({local})")
                self._kinds = frozenset(k for k in kinds if k is not None)
                self._pinned = addresses if self._kinds else []
            return self._kinds

    def _registry_addresses(self, host: str, port: int) -> list[str]:
        if self._registry_kinds(port):
            return self._pinned
        addresses = resolve(host, port)
        for address in addresses:
            kind = own_address_kind(address)
            if kind is not None:
                raise RefusedDestinationError(
                    f"refused to reach {self.registry} at {address}: {kind.value}, and the name resolved "
                    "elsewhere before (a DNS answer that changed: rebinding)")
        return addresses


def _bare(host: str) -> str:
    return host.strip("[]").lower()


def _shown(host: str, port: int, address: str) -> str:
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return shown if _bare(host) == address else f"{shown} ({address})"


def _kind_words(kinds: frozenset[OwnKind]) -> str:
    return " and ".join(sorted(kind.value for kind in kinds))
