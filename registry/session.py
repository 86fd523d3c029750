"""One HTTP client per registry host, and the single `send` every registry verb goes through.

A host gets its scheme (HTTPS unless declared insecure; loopback hosts fall
back to plain HTTP as docker allows), its TLS trust (system roots plus the
host's private CA, or none with --skip-tls-verify; a client certificate for
mutual TLS, registry/client_cert.py), its credentials and auth
handler, and a keep-alive connection pool whose every connection (redirects
and token realms included) goes only where that registry may lead
(registry/destinations.py: never from elsewhere to the host's own services). Verbs (manifests, blobs, push, tags)
only say which repository, which action and which statuses are success; errors
come back as `RegistryError`s naming both. Nothing here retries: each verb runs
its whole operation under `Session.retry` (registry/retry.py).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from oci.own_addresses import guarded_transport
from oci.tls_trust import https_context
from registry.auth import CONTEXT, PING, SCOPES, RegistryAuth, merge_scopes, parse_challenges, repository_scope
from registry.client_cert import load_client_certificate
from registry.credentials import resolve_credentials
from registry.decode import read_limited
from registry.destinations import RegistryDestinations
from registry.dockerconfig import Credentials, DockerConfig
from registry.errors import (
    AuthError,
    RefusedDestinationError,
    RegistryError,
    RegistryUnreachableError,
    caused_by,
    received_tls_alert,
)
from registry.limits import MAX_SMALL_RESPONSE
from registry.options import RegistryOptions
from registry.reference import Reference, api_host
from registry.retry import RetryPolicy, describe_http_error

__all__ = ["ACTION_SCOPES", "HostClient", "Session", "is_loopback"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# What each kind of operation asks the token service for.
ACTION_SCOPES = {"pull": ("pull",), "push": ("pull", "push"), "delete": ("pull", "push", "delete")}


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (with or without a port): docker lets these fall back to HTTP."""
    name = host
    if name.startswith("["):
        name = name[1:name.find("]")]
    elif name.count(":") == 1:
        name = name.split(":")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass
class HostClient:
    """The httpx client of one registry host and the base URL it answers on."""

    registry: str
    client: httpx.Client
    base_url: str
    auth: RegistryAuth


class Session:
    """Shared by all verbs of one `RegistryClient`; thread-safe (push uses a pool)."""

    def __init__(self, options: RegistryOptions, *, environ: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options
        self._transport = transport  # tests: an httpx.MockTransport
        self._clock = clock  # what token lifetimes are measured with (tests: a fake clock)
        self.policy = RetryPolicy(retries=options.retries, base_delay=options.backoff_base, sleep=sleep)
        self._environ = environ
        self._hosts: dict[str, HostClient] = {}
        self._credentials: dict[str, Credentials | None] = {}
        self._lock = threading.Lock()
        self._credentials_lock = threading.Lock()  # taken inside `_lock` (a host being opened asks for them)

    # -- host clients ------------------------------------------------------------------------
    def host(self, registry: str) -> HostClient:
        with self._lock:
            found = self._hosts.get(registry)
            if found is None:
                found = self._hosts[registry] = self._open_host(registry)
        return found

    def credentials_for(self, registry: str) -> Credentials | None:
        """`registry`'s credentials, found once per session: docker's config.json and its credential helpers
        are read the first time (`RegistryClient.resolve_credentials` makes that the start of a build, before
        any step has run: a step running in place could rewrite the config and plant a helper)."""
        with self._credentials_lock:
            if registry not in self._credentials:
                self._credentials[registry] = self._find_credentials(registry)
            return self._credentials[registry]

    def _find_credentials(self, registry: str) -> Credentials | None:
        if not self.options.use_docker_config:
            return resolve_credentials(registry, explicit=self.options.credentials, environ={},
                                       config=DockerConfig(Path(os.devnull), {}))
        kwargs: dict[str, Any] = {"explicit": self.options.credentials}
        if self._environ is not None:
            kwargs["environ"] = self._environ
        return resolve_credentials(registry, **kwargs)

    def _for_host(self, table: Collection[str], registry: str) -> bool:
        return registry in table or api_host(registry) in table

    def _pull_only(self, registry: str) -> bool:
        """A registry this build only reads from: what kaniko's --insecure-pull/--skip-tls-verify-pull relax."""
        return not self._for_host(self.options.push_registries, registry)

    def _verify(self, registry: str) -> ssl.SSLContext:
        options = self.options
        if (options.skip_tls_verify or self._for_host(options.skip_tls_verify_registries, registry)
                or (options.pull_skip_tls_verify and self._pull_only(registry))):
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = https_context(ca_file=options.ca_files.get(registry) or options.ca_files.get(api_host(registry)),
                                    server=registry)
        client_cert = options.client_certificates.get(registry) or options.client_certificates.get(api_host(registry))
        if client_cert:
            load_client_certificate(context, *client_cert, registry=registry)
        return context

    def _open_host(self, registry: str) -> HostClient:
        host = api_host(registry)
        auth = RegistryAuth(registry, self.credentials_for(registry), clock=self._clock)
        limits = httpx.Limits(max_connections=self.options.push_concurrency + 4,
                              max_keepalive_connections=self.options.push_concurrency + 4)
        # Every connection of this host's client (redirect hops and token requests too) goes only where
        # this registry may lead (registry/destinations.py).
        inner = self._transport or guarded_transport(RegistryDestinations(registry).addresses,
                                                     verify=self._verify(registry), limits=limits)
        client = httpx.Client(
            transport=inner, auth=auth, follow_redirects=True,
            timeout=httpx.Timeout(self.options.timeout, connect=self.options.connect_timeout),
            # identity: a body's size on the wire is its size (registry/limits.py).
            headers={"User-Agent": self.options.user_agent, "Accept-Encoding": "identity"},
        )
        insecure = registry in self.options.insecure_registries or host in self.options.insecure_registries
        base = f"http://{host}" if insecure else f"https://{host}"
        if not insecure and (is_loopback(host) or (self.options.pull_insecure and self._pull_only(registry))):
            base = self._probe_scheme(client, host, registry)
        return HostClient(registry, client, base, auth)

    def _probe_scheme(self, client: httpx.Client, host: str, registry: str) -> str:
        """HTTPS if the registry speaks it, else plain HTTP: docker's rule for loopback registries, and
        go-containerregistry's for an insecure one (kaniko's --insecure-pull)."""
        request = client.build_request("GET", f"https://{host}/v2/", extensions={PING: True, CONTEXT: registry})
        try:
            client.send(request).close()
            return f"https://{host}"
        except httpx.TransportError as exc:
            if _untrusted_certificate(exc) or received_tls_alert(exc):
                # It speaks TLS (its certificate is not trusted, or it refused ours: mutual TLS):
                # falling back to HTTP would only hide the real problem.
                return f"https://{host}"
            if not caused_by(exc, ssl.SSLError):
                # Refused or timed out: nothing learnt about the scheme; not cached, asked again next time.
                raise RegistryUnreachableError(f"cannot reach {registry}: {describe_http_error(exc)}") from None
            log.debug("%s: no HTTPS (%s); using plain HTTP as docker does for loopback registries", host, exc)
            return f"http://{host}"

    def close(self) -> None:
        with self._lock:
            for host in self._hosts.values():
                host.client.close()
            self._hosts.clear()

    # -- operations and requests ---------------------------------------------------------------
    def retry(self, operation: Callable[[], T], *, what: str) -> T:
        """Run one whole operation under the retry policy (once, if inside another's attempt)."""
        return self.policy.run(operation, what=what)

    def url(self, ref: Reference, path: str) -> str:
        """An absolute URL (a `Location` header) as is, a relative one resolved, else ``/v2/REPO/PATH``."""
        base = self.host(ref.registry).base_url
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/"):
            return base + path
        return f"{base}/v2/{ref.repository}/{path}"

    def build(self, ref: Reference, method: str, path: str, *, action: str, extra_scopes: tuple[str, ...] = (),
              **kwargs: Any) -> httpx.Request:
        host = self.host(ref.registry)
        scopes = merge_scopes((repository_scope(ref.repository, ACTION_SCOPES[action]),), extra_scopes)
        extensions: dict[str, Any] = {SCOPES: scopes, CONTEXT: ref.context(action)}
        return host.client.build_request(method, self.url(ref, path), extensions=extensions, **kwargs)

    def send(self, ref: Reference, request: httpx.Request, *, ok: Collection[int], action: str,
             stream: bool = False, what: str | None = None) -> httpx.Response:
        """Send; a status outside `ok` raises `RegistryError` (response closed).

        Unless `stream`, the body is read, up to `MAX_SMALL_RESPONSE`: these are
        answers whose headers matter (upload bookkeeping, HEADs, PUTs).
        """
        client = self.host(ref.registry).client
        context = what or ref.context(action)
        try:
            response = client.send(request, stream=True)
            if response.status_code not in ok:
                try:
                    raise self._error(ref, response, context, action)
                finally:
                    response.close()
            if not stream:
                try:
                    read_limited(response, MAX_SMALL_RESPONSE, limit_name="small response size",
                                 what=f"the answer for {context}")
                finally:
                    response.close()
        except httpx.TransportError as exc:
            raise RegistryUnreachableError(f"cannot reach {ref.registry} for {context}: {describe_http_error(exc)}",
                                           tls=caused_by(exc, ssl.SSLError)) from None
        except RefusedDestinationError as exc:
            raise RefusedDestinationError(f"{exc} (for {context})") from None
        return response

    def _error(self, ref: Reference, response: httpx.Response, context: str, action: str) -> RegistryError:
        if response.status_code in (401, 403):
            context = ref.context(action)  # auth is about the repository and action, not the blob
        error = RegistryError.from_response(response, context)
        if response.status_code == 401:
            auth = self.host(ref.registry).auth
            challenges = parse_challenges(response.headers.get("www-authenticate", ""))
            if isinstance(error, AuthError) and _token_expired_under_stream(response.request):
                error.stale_token = True
            if any(c.params.get("error") == "insufficient_scope" for c in challenges):
                # Authenticated, but the token lacks the action: a permission problem, not a password one.
                error.args = (f"denied: requested access to the resource is denied for {context}{auth.who_denied()}",)
            else:
                error.args = (str(error) + auth.who(),)
        elif response.status_code == 403:
            error.args = (str(error) + self.host(ref.registry).auth.who_denied(),)
        return error

    def call(self, ref: Reference, method: str, path: str, *, action: str, ok: Collection[int] = (200,),
             extra_scopes: tuple[str, ...] = (), what: str | None = None, **kwargs: Any) -> httpx.Response:
        """Build, send and read a small response (upload bookkeeping, HEADs, PUTs of small bodies)."""
        request = self.build(ref, method, path, action=action, extra_scopes=extra_scopes, **kwargs)
        return self.send(ref, request, ok=ok, action=action, what=what)

    def open(self, ref: Reference, method: str, path: str, *, action: str, ok: Collection[int] = (200,),
             what: str | None = None, **kwargs: Any) -> httpx.Response:
        """Like `call`, but the body is left unread for streaming: the caller closes the response."""
        request = self.build(ref, method, path, action=action, **kwargs)
        return self.send(ref, request, ok=ok, action=action, stream=True, what=what)

    @contextmanager
    def stream(self, ref: Reference, method: str, path: str, *, action: str, ok: Collection[int] = (200,),
               what: str | None = None, **kwargs: Any) -> Iterator[httpx.Response]:
        """`open`, closed on exit."""
        response = self.open(ref, method, path, action=action, ok=ok, what=what, **kwargs)
        try:
            yield response
        finally:
            response.close()


def _untrusted_certificate(exc: BaseException) -> bool:
    return caused_by(exc, ssl.SSLCertVerificationError)


def _token_expired_under_stream(request: httpx.Request) -> bool:
    """A 401 to a streamed body sent with a Bearer token: the auth flow could not replay it with a fresh one."""
    streamed = not isinstance(request.stream, httpx.ByteStream)
    return streamed and request.headers.get("authorization", "").lower().startswith("bearer ")

