"""Registry errors: the distribution spec's error codes, typed, with one `is_temporary` verdict.

A registry answers a failure with ``{"errors": [{"code", "message", "detail"}]}``;
`RegistryError.from_response` keeps those codes so callers branch on
``NAME_UNKNOWN`` or ``DENIED`` rather than on text (a 404 is a `NotFoundError`),
and `is_temporary` is the only thing the retry loop (registry/retry.py) asks.
Messages name the repository and the action (``... for HOST/REPO (push)``) and
are built only from the status, the spec's code and message fields and our own
words: never from request headers, credentials or tokens.
"""

from __future__ import annotations

import datetime as _dt
import json
import ssl
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from oci.errors import WharfieError

# httpx (and registry.limits, built on it) are imported where an answer is read: `registry.reference`, which
# raises these errors, stays light enough for `wharfie --help`.
if TYPE_CHECKING:
    import httpx

__all__ = [
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DENIED",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "TAG_INVALID",
    "TEMPORARY_STATUSES",
    "TOO_MANY_REQUESTS",
    "UNAUTHORIZED",
    "UNAVAILABLE",
    "UNKNOWN",
    "UNSUPPORTED",
    "AuthError",
    "ErrorDetail",
    "InvalidReferenceError",
    "InvalidResponseError",
    "LimitExceededError",
    "NotFoundError",
    "RefusedDestinationError",
    "RegistryError",
    "RegistryUnreachableError",
    "caused_by",
    "is_temporary",
    "parse_retry_after",
    "received_tls_alert",
]

UNAUTHORIZED = "UNAUTHORIZED"
DENIED = "DENIED"
NAME_UNKNOWN = "NAME_UNKNOWN"
NAME_INVALID = "NAME_INVALID"
MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
MANIFEST_INVALID = "MANIFEST_INVALID"
MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
BLOB_UNKNOWN = "BLOB_UNKNOWN"
BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
DIGEST_INVALID = "DIGEST_INVALID"
SIZE_INVALID = "SIZE_INVALID"
TAG_INVALID = "TAG_INVALID"
UNSUPPORTED = "UNSUPPORTED"
TOO_MANY_REQUESTS = "TOOMANYREQUESTS"
UNAVAILABLE = "UNAVAILABLE"
UNKNOWN = "UNKNOWN"

# 501 Not Implemented is not here: asking again will not implement it.
TEMPORARY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_TEMPORARY_CODES = frozenset({TOO_MANY_REQUESTS, UNAVAILABLE})
_MAX_MESSAGE = 200
_MAX_ENTRIES = 20

_STATUS_WORDS = {
    400: "bad request", 401: "unauthorized: authentication required", 403: "denied: access forbidden",
    404: "not found", 405: "unsupported: operation not allowed by this registry", 408: "request timeout",
    413: "request entity too large", 416: "requested range not satisfiable",
    429: "toomanyrequests: too many requests",
}


class InvalidReferenceError(WharfieError):
    """A malformed image reference; the message names it and says what is wrong."""


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of a registry's ``errors`` array."""

    code: str
    message: str
    detail: Any = None


class RegistryError(WharfieError):
    """A registry refused or failed a request.

    `status` is the HTTP status (None when no response came), `errors` the
    spec's error entries from the body, `retry_after` the seconds the registry
    asked us to wait (if any).
    """

    def __init__(self, message: str, *, status: int | None = None, errors: tuple[ErrorDetail, ...] = (),
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors
        self.retry_after = retry_after

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(e.code for e in self.errors)

    @property
    def code(self) -> str | None:
        """The first of the spec's error codes the registry sent (``MANIFEST_UNKNOWN``...), if any."""
        return self.errors[0].code if self.errors else None

    def has_code(self, *codes: str) -> bool:
        return bool(self.codes.intersection(codes))

    @property
    def temporary(self) -> bool:
        """Whether the same operation may succeed if tried again later (`is_temporary` decides)."""
        return is_temporary(self)

    @classmethod
    def from_response(cls, response: httpx.Response, context: str) -> RegistryError:
        """Build the error for a failed `response`; `context` is ``HOST/REPO (ACTION)``.

        The body is read here (error bodies are small); a 401 or 403 gives an
        `AuthError`, a 404 a `NotFoundError`.
        """
        errors = _parse_errors(response)
        if errors:
            first = errors[0]
            text = f"{first.code.lower()}: {first.message}" if first.message else first.code.lower()
        else:
            text = _STATUS_WORDS.get(response.status_code, f"unexpected status {response.status_code}"
                                     f" {response.reason_phrase}".rstrip())
        message = f"{_clip(text)} for {context}"
        kind: type[RegistryError] = cls
        if response.status_code in (401, 403):
            kind = AuthError
        elif response.status_code == 404:
            kind = NotFoundError
        return kind(message, status=response.status_code, errors=errors,
                    retry_after=parse_retry_after(response.headers.get("retry-after")))


class AuthError(RegistryError):
    """Authentication or authorisation failed (401, 403, or a token request refused).

    `stale_token` marks a 401 to a streamed upload sent with a cached token:
    the token expired under the body, which the auth flow cannot replay; the
    operation, tried again, fetches a fresh one.
    """

    stale_token: bool = False


class InvalidResponseError(RegistryError):
    """A registry's answer (manifest, index, config, token, header) is malformed; the message names the reference."""


class NotFoundError(RegistryError):
    """404: the manifest, blob, tag or repository is not there (`code` says which, when the registry says)."""


class LimitExceededError(RegistryError):
    """A registry's answer is larger or deeper than wharfie accepts; `limit` names the limit.

    The limits (registry/limits.py) stop a hostile or broken registry from
    filling memory or the stack; real images stay far below them.
    """

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class RefusedDestinationError(RegistryError):
    """A registry's answer (a redirect, a token realm, an upload Location) or its own name led to one of the
    builder host's own addresses, which it may not (registry/destinations.py); never worth retrying."""


class RegistryUnreachableError(RegistryError):
    """No usable response: connection refused or reset, TLS failure, timeout, a body cut short.

    `tls` marks a failed TLS handshake (untrusted certificate, not TLS at all):
    it would fail the same way again.
    """

    def __init__(self, message: str, *, tls: bool = False) -> None:
        super().__init__(message)
        self.tls = tls


def caused_by(exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
    """Whether `exc` or anything in its cause/context chain is a `kind` (httpx wraps the OS's errors)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def received_tls_alert(exc: BaseException) -> str | None:
    """The reason of a TLS alert the peer sent (OpenSSL's ``..._ALERT_...``, e.g. ``SSLV3_ALERT_BAD_CERTIFICATE``
    when a registry requiring mutual TLS refuses the client's certificate or its absence), if that is what
    `exc` came from: the peer speaks TLS."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        reason = getattr(seen, "reason", None)
        if isinstance(seen, ssl.SSLError) and isinstance(reason, str) and "_ALERT_" in reason:
            return reason
        seen = seen.__cause__ or seen.__context__
    return None


def is_temporary(exc: BaseException) -> bool:
    """The one verdict on whether an operation that failed with `exc` may succeed if tried again.

    Temporary: no usable answer (connection refused, reset or cut, a timeout),
    except a TLS handshake that failed; the statuses 408, 429, 500, 502, 503,
    504 and the spec's ``TOOMANYREQUESTS``/``UNAVAILABLE`` codes; a token that
    expired under a streamed upload. Everything else (404, 401, 403, 400,
    digest mismatches, malformed answers) fails the same way again.
    """
    if isinstance(exc, RegistryUnreachableError):
        return not exc.tls
    if isinstance(exc, AuthError):
        return exc.stale_token
    if isinstance(exc, RegistryError):
        return exc.status in TEMPORARY_STATUSES or bool(exc.codes & _TEMPORARY_CODES)
    import httpx

    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.ProxyError)):
        return False
    if isinstance(exc, httpx.TransportError):
        return not caused_by(exc, ssl.SSLError)
    return False


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


class _Unusable(Exception):
    """An error body too large or compressed: the error is reported without its codes."""


def _error_body(response: httpx.Response) -> bytes | None:
    import httpx

    from registry.limits import MAX_SMALL_RESPONSE, read_capped

    try:
        return read_capped(response, MAX_SMALL_RESPONSE, _Unusable, lambda _encoding: _Unusable())
    except (_Unusable, httpx.HTTPError, httpx.StreamError):
        return None


def _parse_errors(response: httpx.Response) -> tuple[ErrorDetail, ...]:
    from registry.limits import json_too_deep

    body = _error_body(response)
    if not body or json_too_deep(body):
        return ()
    try:
        data = json.loads(body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        return ()
    entries = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return ()
    out = []
    for entry in entries[:_MAX_ENTRIES]:
        if isinstance(entry, dict) and isinstance(entry.get("code"), str):
            out.append(ErrorDetail(_clip(entry["code"]).upper(), str(entry.get("message") or ""), entry.get("detail")))
    return tuple(out)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return max(0.0, (when - _dt.datetime.now(_dt.UTC)).total_seconds())
