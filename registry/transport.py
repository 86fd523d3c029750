"""The one retry policy, as an httpx transport wrapped around the real one.

Every request of a registry client (token requests included) passes through
`RetryTransport`, so there is one place that decides what is sent again:

* a connection that never opened, a 429 or a 503: the request was not
  processed, so any request whose body can be replayed is resent;
* a connection dropped after sending, 408, 500, 502, 504: only idempotent
  requests (GET, HEAD, PUT, DELETE, OPTIONS), or those a caller marks safe
  with ``request.extensions[RETRY_SAFE] = True`` (the POST that opens an
  upload session: a second one merely opens a second session).

A streamed upload body cannot be replayed; the uploader restarts such an
upload from a fresh session with the same `RetryPolicy`, so the policy stays
one. Waits grow exponentially with jitter and honour ``Retry-After``.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from registry.errors import TEMPORARY_STATUSES, parse_retry_after

__all__ = ["IDEMPOTENT_METHODS", "RETRY_SAFE", "RetryPolicy", "RetryTransport", "caused_by"]

log = logging.getLogger(__name__)

RETRY_SAFE = "wharfie.retry_safe"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_NOT_PROCESSED_STATUSES = frozenset({429, 503})
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait: `retries` is kaniko's ``--push-retry``."""

    retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based).

        Exponential with "equal jitter" (half fixed, half random) so many
        clients backing off from one registry do not return in step; a
        registry's ``Retry-After`` is a floor, capped at `max_retry_after`.
        """
        backoff = min(self.max_delay, self.base_delay * float(2 ** attempt))
        wait = backoff / 2 + random.uniform(0, backoff / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait

    def wait(self, attempt: int, retry_after: float | None, what: str) -> None:
        seconds = self.delay(attempt, retry_after)
        log.info("retrying %s in %.1fs (retry %d of %d)", what, seconds, attempt + 1, self.retries)
        self.sleep(seconds)


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


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def _idempotent(request: httpx.Request) -> bool:
    return request.method in IDEMPOTENT_METHODS or bool(request.extensions.get(RETRY_SAFE))


def _what(request: httpx.Request) -> str:
    # Method and path only: query strings may carry an upload session's state.
    return f"{request.method} {request.url.host}{request.url.path}"


class RetryTransport(httpx.BaseTransport):
    """Resends requests the policy allows; everything else passes straight through."""

    def __init__(self, inner: httpx.BaseTransport, policy: RetryPolicy) -> None:
        self._inner = inner
        self.policy = policy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._inner.handle_request(request)
            except httpx.TransportError as exc:
                if not self._may_retry_error(request, exc, attempt):
                    raise
                self.policy.wait(attempt, None, f"{_what(request)} after {type(exc).__name__}")
                attempt += 1
                continue
            if not self._may_retry_status(request, response.status_code, attempt):
                return response
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            response.close()
            self.policy.wait(attempt, retry_after, f"{_what(request)} after HTTP {response.status_code}")
            attempt += 1

    def _may_retry_error(self, request: httpx.Request, exc: httpx.TransportError, attempt: int) -> bool:
        if attempt >= self.policy.retries or not _replayable(request) or caused_by(exc, ssl.SSLError):
            return False  # a TLS handshake that failed once (bad certificate, not TLS at all) fails again
        return isinstance(exc, _NOT_SENT_ERRORS) or _idempotent(request)

    def _may_retry_status(self, request: httpx.Request, status: int, attempt: int) -> bool:
        if status not in TEMPORARY_STATUSES or attempt >= self.policy.retries or not _replayable(request):
            return False
        return status in _NOT_PROCESSED_STATUSES or _idempotent(request)

    def close(self) -> None:
        self._inner.close()
