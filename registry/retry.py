"""The one retry loop: each registry operation is tried again as a whole, nothing under it retries.

go-containerregistry's pattern (``remote/write.go``): an operation (fetch a
manifest, download a blob, make one blob present in a repository, put a
manifest) is retried whole, and passes ``retry.Never`` down so the transport
does not retry under it. Here the transport never retries at all, and an
operation run inside another's attempt (a HEAD inside a blob push, a config
fetch inside `fetch_small_blob`) runs once: its failure goes up to the
enclosing loop, which decides. So a failure that never heals costs exactly
``retries + 1`` requests, not ``(retries + 1)²``.

What is worth trying again is decided by `registry.errors.is_temporary`
alone; how long to wait here: exponential backoff with jitter, a registry's
``Retry-After`` as the floor. Operations are written to be restartable: a
download resumes from the bytes it has, a chunked upload from the registry's
``Range``, a push re-checks with HEAD whether its blob arrived.
"""

from __future__ import annotations

import contextvars
import logging
import random
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from registry.errors import RegistryError, RegistryUnreachableError, caused_by, is_temporary, received_tls_alert

__all__ = ["RetryPolicy", "describe_http_error"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Set while an attempt of some operation runs in this thread (or context): operations
# started inside it run once and leave the decision to that loop (the `retry.Never` rule).
_INSIDE_ATTEMPT: contextvars.ContextVar[bool] = contextvars.ContextVar("wharfie_inside_attempt", default=False)

# Alerts about the client's certificate (bad, unknown CA, required, expired...): the server asked for one.
_CLIENT_CERT_ALERT = re.compile(r"CERTIFICATE|UNKNOWN_CA")


def describe_http_error(exc: Exception) -> str:
    """One line about an httpx failure; certificate problems say how to fix them."""
    lines = str(exc).strip().splitlines()
    text = lines[0][:200] if lines else type(exc).__name__
    if caused_by(exc, ssl.SSLCertVerificationError):
        text += " (give its CA with --registry-certificate HOST=PATH, or use --skip-tls-verify)"
    elif _CLIENT_CERT_ALERT.search(received_tls_alert(exc) or ""):
        # Sent only by a server that checks client certificates: ours is missing or not one it trusts.
        text += (" (the registry wants a client certificate it trusts: give one with "
                 "--registry-client-cert HOST=CERT,KEY)")
    return text


def _as_registry_error(exc: Exception, what: str) -> Exception:
    """httpx's own errors (a body cut short, an undecodable body) leave here as registry errors naming `what`."""
    if isinstance(exc, httpx.TransportError):
        return RegistryUnreachableError(f"cannot reach the registry for {what}: {describe_http_error(exc)}",
                                        tls=caused_by(exc, ssl.SSLError))
    if isinstance(exc, (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)):
        return RegistryError(f"unusable answer for {what}: {type(exc).__name__}: {describe_http_error(exc)}")
    return exc


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait: `retries` is kaniko's ``--push-retry`` (0: try once)."""

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

    def run(self, operation: Callable[[], T], *, what: str) -> T:
        """Call `operation` until it succeeds, fails for good, or `retries` more tries are spent.

        Inside another operation's attempt it is called once (that loop decides).
        A last failure is raised as it came, httpx's errors as `RegistryError`s naming `what`.
        """
        if _INSIDE_ATTEMPT.get():
            return operation()
        attempt = 0
        while True:
            marker = _INSIDE_ATTEMPT.set(True)
            try:
                return operation()
            except Exception as exc:  # classified below; non-temporary ones are re-raised
                if attempt >= self.retries or not is_temporary(exc):
                    error = _as_registry_error(exc, what)
                    if attempt and isinstance(error, RegistryError):
                        error.args = (f"{error} (gave up after {attempt + 1} attempts)",)
                    if error is exc:
                        raise
                    raise error from None
                retry_after = exc.retry_after if isinstance(exc, RegistryError) else None
                reason = describe_http_error(exc) if isinstance(exc, httpx.HTTPError) else str(exc)
            finally:
                _INSIDE_ATTEMPT.reset(marker)
            seconds = self.delay(attempt, retry_after)
            log.info("retrying %s in %.1fs (retry %d of %d): %s", what, seconds, attempt + 1, self.retries, reason)
            self.sleep(seconds)
            attempt += 1
