"""Registry authentication as an `httpx.Auth` generator that answers `401` challenges.

The registry says how to authenticate in ``WWW-Authenticate``: ``Basic``, or
``Bearer realm=...,service=...,scope=...`` (docker's token protocol, which
GitLab speaks). The token request is yielded through the same client, so the
one retry policy and TLS settings apply to it and a `MockTransport` test sees
the whole exchange in order.

Tokens are cached per set of scopes and reused for any request whose scopes
they cover; one is renewed a little before `expires_in` runs out, because
GitLab's tokens live only 5 (self-managed) or 15 minutes (gitlab.com) and a
long push must not fail half way. A 401 on a request sent with a cached token
gets exactly one fresh token, never a loop.

Requests say what they need in ``request.extensions``: ``SCOPES`` (a tuple of
scope strings, e.g. push to the destination plus pull from a mount source),
``CONTEXT`` (``HOST/REPO (ACTION)`` for error messages) and ``PING`` (learn
the challenge, do not authenticate).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass

import httpx

from registry.decode import load_json, read_limited
from registry.dockerconfig import Credentials
from registry.errors import AuthError, InvalidResponseError, RegistryError
from registry.limits import MAX_SMALL_RESPONSE, MAX_TOKEN_RESPONSE
from registry.reference import api_host

__all__ = [
    "CONTEXT",
    "PING",
    "SCOPES",
    "Challenge",
    "RegistryAuth",
    "merge_scopes",
    "parse_challenges",
    "repository_scope",
]

log = logging.getLogger(__name__)

SCOPES = "wharfie.scopes"
CONTEXT = "wharfie.context"
PING = "wharfie.ping"

_DEFAULT_EXPIRES = 60  # the token spec's default when a token response names no lifetime
_MAX_EXPIRES = 366 * 86400
# A token goes into an Authorization header: visible ASCII, no spaces (RFC 6750's b64token, loosened).
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")
_MAX_MARGIN = 30.0
_SCHEME_RE = re.compile(r"\s*,?\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)")
_CHALLENGE_RE = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lowercase: "basic" or "bearer"
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235; quoted strings may hold commas)."""
    out: list[Challenge] = []
    pos = 0
    while pos < len(header):
        scheme_match = _SCHEME_RE.match(header, pos)
        if not scheme_match:
            break
        pos = scheme_match.end()
        params: dict[str, str] = {}
        while (match := _CHALLENGE_RE.match(header, pos)) and match.end() > pos:
            # Stop at the next scheme: a token followed by a space, not by '='.
            params[match.group(1).lower()] = (match.group(2) if match.group(2) is not None
                                              else match.group(3)).replace('\\"', '"')
            pos = match.end()
        out.append(Challenge(scheme_match.group(1).lower(), params))
    return out


def repository_scope(repository: str, actions: Iterable[str]) -> str:
    return f"repository:{repository}:{','.join(sorted(set(actions)))}"


def _parse_scope(scope: str) -> tuple[str, frozenset[str]]:
    resource, _, actions = scope.rpartition(":")
    if not resource:
        return scope, frozenset()
    return resource, frozenset(a for a in actions.split(",") if a)


def merge_scopes(*groups: Iterable[str]) -> tuple[str, ...]:
    """Union scopes per resource: ``repository:a:pull`` + ``repository:a:push`` -> ``repository:a:pull,push``."""
    merged: dict[str, set[str]] = {}
    for group in groups:
        for scope in group:
            for part in scope.split():
                resource, actions = _parse_scope(part)
                merged.setdefault(resource, set()).update(actions)
    return tuple(f"{r}:{','.join(sorted(a))}" if a else r for r, a in sorted(merged.items()))


def _covers(have: frozenset[str], wanted: Iterable[str]) -> bool:
    granted: dict[str, frozenset[str]] = {}
    for scope in have:
        resource, actions = _parse_scope(scope)
        granted[resource] = granted.get(resource, frozenset()) | actions
    for scope in wanted:
        resource, actions = _parse_scope(scope)
        got = granted.get(resource)
        if got is None or not ("*" in got or actions <= got):
            return False
    return True


def _lifetime(value: object) -> float:
    """``expires_in``: seconds, as the token spec says; anything else (absent, not a number, out of range) is its default."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= _MAX_EXPIRES:
        return float(_DEFAULT_EXPIRES)
    return float(value)


@dataclass(frozen=True)
class _Token:
    value: str
    scopes: frozenset[str]
    renew_at: float


def _is_replayable(request: httpx.Request) -> bool:
    # A streamed upload body can be sent only once; bytes can be sent again.
    return isinstance(request.stream, httpx.ByteStream)


class RegistryAuth(httpx.Auth):
    """Challenge-driven auth for one registry host (one instance per host client)."""

    def __init__(self, registry: str, credentials: Credentials | None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self._host = httpx.URL(f"http://{api_host(registry)}/").host
        self._credentials = credentials
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: list[_Token] = []
        self._bearer: Challenge | None = None
        self._basic = False

    # -- header selection ------------------------------------------------------------------
    def _basic_header(self) -> str | None:
        if self._credentials is None or self._credentials.identity_token:
            return None
        raw = f"{self._credentials.username}:{self._credentials.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _cached(self, scopes: tuple[str, ...]) -> _Token | None:
        now = self._clock()
        with self._lock:
            self._tokens = [t for t in self._tokens if t.renew_at > now]
            for token in self._tokens:
                if _covers(token.scopes, scopes):
                    return token
        return None

    def _forget(self, token: _Token) -> None:
        with self._lock:
            self._tokens = [t for t in self._tokens if t is not token]

    # -- the flow ----------------------------------------------------------------------------
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if request.url.host != self._host:
            # An absolute upload Location on another host (a storage backend, or a hostile
            # registry): it never gets this registry's password or token (go-containerregistry's rule).
            yield request
            return
        scopes = tuple(request.extensions.get(SCOPES, ()))
        replayable = _is_replayable(request)  # before sending: a mock transport buffers what it reads
        token = self._cached(scopes) if scopes else None
        if token is None and self._bearer is not None and scopes and not request.extensions.get(PING):
            # We know the realm already: fetch before sending, so a streamed body goes out once.
            token = yield from self._fetch_token(self._bearer, scopes, request)
        self._apply(request, token)
        response = yield request
        if response.status_code != 401 or request.extensions.get(PING):
            self._learn(response)
            return
        challenge = self._learn(response)
        if challenge is None or not replayable:
            if token is not None:
                self._forget(token)  # the caller restarts the upload; it must not reuse this token
            return
        # httpx reads this 401's body whole before sending our next request: bound it first.
        read_limited(response, MAX_SMALL_RESPONSE, limit_name="small response size",
                     what=f"the 401 answer of {self.registry}")
        if challenge.scheme == "basic":
            header = self._basic_header()
            if header is None or request.headers.get("Authorization") == header:
                return  # no credentials, or they were just refused: the caller reports the 401
            request.headers["Authorization"] = header
            yield request
            return
        if token is not None:
            self._forget(token)  # expired or revoked early: one fresh token, then give up
        wanted = merge_scopes(scopes, challenge.params.get("scope", "").split())
        fresh = yield from self._fetch_token(challenge, wanted, request)
        self._apply(request, fresh)
        yield request

    def _apply(self, request: httpx.Request, token: _Token | None) -> None:
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token.value}"
        elif self._basic:
            header = self._basic_header()
            if header:
                request.headers["Authorization"] = header

    def _learn(self, response: httpx.Response) -> Challenge | None:
        """Remember the registry's scheme from a 401 (realm and service for Bearer)."""
        if response.status_code != 401:
            return None
        for challenge in parse_challenges(response.headers.get("www-authenticate", "")):
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                self._bearer = Challenge("bearer", {k: v for k, v in challenge.params.items() if k != "scope"})
                return challenge
            if challenge.scheme == "basic":
                self._basic = self._credentials is not None
                return challenge
        return None

    # -- the token request -------------------------------------------------------------------
    def _realm(self, challenge: Challenge) -> httpx.URL:
        """The challenge's token realm, if it is an absolute http(s) URL."""
        realm = challenge.params["realm"]
        try:
            url = httpx.URL(realm)
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise InvalidResponseError(f"{self.registry} names an unusable token realm {realm[:100]!r}")
        return url

    def _token_request(self, challenge: Challenge, scopes: tuple[str, ...]) -> httpx.Request:
        realm = self._realm(challenge)
        service = challenge.params.get("service")
        creds = self._credentials
        if creds is not None and creds.identity_token:
            # OAuth2 refresh-token grant (docker's identitytoken), sent as a form POST.
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "client_id": "wharfie"}
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            return httpx.Request("POST", realm, data=form)
        params: list[tuple[str, str | int | float | bool | None]] = [("service", service)] if service else []
        if creds is not None and creds.username:
            params.append(("account", creds.username))
        params.extend(("scope", s) for s in scopes)
        headers = {}
        basic = self._basic_header()
        if basic:
            headers["Authorization"] = basic
        return httpx.Request("GET", realm, params=params, headers=headers)

    def _check_realm(self, realm: str, request: httpx.Request) -> None:
        """Credentials go to a plain-HTTP realm only if the registry itself is plain HTTP, or on loopback.

        The realm comes from the registry's challenge: an HTTPS registry naming an
        http:// realm would otherwise have us send the password in clear text.
        """
        url = self._realm(Challenge("bearer", {"realm": realm}))
        if self._credentials is None or url.scheme != "http" or request.url.scheme == "http":
            return
        if url.host in ("localhost", "::1") or url.host.startswith("127."):
            return
        raise AuthError(f"refusing to send the credentials for {self.registry} to the plain-HTTP token realm "
                        f"{url.host}: the registry is HTTPS (list it with --insecure-registry if that is intended)")

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...],
                     request: httpx.Request) -> Generator[httpx.Request, httpx.Response, _Token]:
        started = self._clock()
        self._check_realm(challenge.params["realm"], request)
        response = yield self._token_request(challenge, scopes)
        realm = str(self._realm(challenge))[:200]
        context = str(request.extensions.get(CONTEXT) or self.registry)
        if response.status_code in (401, 403):
            raise AuthError(self._refused_message(response, context), status=response.status_code)
        if response.status_code != 200:
            raise RegistryError.from_response(response, f"{context} (token request to {realm})")
        what = f"the token answer of {realm} for {context}"
        raw = read_limited(response, MAX_TOKEN_RESPONSE, limit_name="token response size", what=what)
        try:
            body = load_json(raw, what=what)
        except InvalidResponseError:
            body = None  # not JSON: no token in it
        value = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not isinstance(value, str) or not _TOKEN_RE.fullmatch(value):
            raise AuthError(f"unauthorized: the token service {realm} returned no token for {context}")
        expires = _lifetime(body.get("expires_in"))
        margin = min(_MAX_MARGIN, expires / 5)
        token = _Token(value, frozenset(scopes), started + expires - margin)
        with self._lock:
            self._tokens.append(token)
        log.debug("token for %s: scopes %s, %ds", self.registry, " ".join(scopes) or "(none)", expires)
        return token

    def _refused_message(self, response: httpx.Response, context: str) -> str:
        return f"{RegistryError.from_response(response, context)}{self.who()}"

    def who(self) -> str:
        """Which credentials were presented, for a 401 message: the user name, never the secret."""
        creds = self._credentials
        if creds is None:
            return " (no credentials found: log in, or pass them)"
        if creds.identity_token and not creds.username:
            return " (identity token refused)"
        return f" (credentials of user {creds.username!r} refused)"

    def who_denied(self) -> str:
        creds = self._credentials
        if creds is None or not creds.username:
            return " (anonymous access lacks this permission: log in)"
        return f" (user {creds.username!r} lacks this permission)"
