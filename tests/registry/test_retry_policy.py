"""The one retry policy: what is temporary (`is_temporary`), how the loop waits, and that loops never nest."""

from __future__ import annotations

import ssl
import threading

import httpx
import pytest

from registry.client import RegistryClient
from registry.errors import (
    AuthError,
    ErrorDetail,
    NotFoundError,
    RegistryError,
    RegistryUnreachableError,
    is_temporary,
)
from registry.options import RegistryOptions
from registry.reference import parse_reference
from registry.retry import RetryPolicy


def error_for(status: int, body: dict | None = None, headers: dict | None = None) -> RegistryError:
    response = httpx.Response(status, json=body, headers=headers or {})
    return RegistryError.from_response(response, "reg.example/g/p (pull)")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_temporary_statuses(status):
    assert is_temporary(error_for(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 416, 501])
def test_permanent_statuses(status):
    assert not is_temporary(error_for(status))


def test_spec_codes_decide_whatever_the_status():
    assert is_temporary(error_for(400, {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}))
    assert is_temporary(error_for(400, {"errors": [{"code": "UNAVAILABLE", "message": "later"}]}))
    assert not is_temporary(error_for(400, {"errors": [{"code": "DIGEST_INVALID", "message": "bad"}]}))


def test_not_found_is_typed_and_permanent():
    error = error_for(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
    assert isinstance(error, NotFoundError) and error.code == "MANIFEST_UNKNOWN" and not error.temporary


def test_connection_errors_are_temporary_except_tls_and_protocol():
    request = httpx.Request("GET", "https://reg.example/v2/")
    assert is_temporary(httpx.ConnectError("refused", request=request))
    assert is_temporary(httpx.ReadError("reset", request=request))
    assert is_temporary(httpx.RemoteProtocolError("cut", request=request))
    assert is_temporary(RegistryUnreachableError("cannot reach"))
    assert not is_temporary(RegistryUnreachableError("bad certificate", tls=True))
    assert not is_temporary(httpx.UnsupportedProtocol("ftp://", request=request))
    try:
        raise httpx.ConnectError("handshake", request=request) from ssl.SSLError("wrong version number")
    except httpx.ConnectError as exc:
        assert not is_temporary(exc)


def test_auth_errors_are_permanent_unless_a_token_expired_under_a_stream():
    error = AuthError("unauthorized", status=401)
    assert not is_temporary(error)
    error.stale_token = True
    assert is_temporary(error)


def test_other_exceptions_are_permanent():
    assert not is_temporary(ValueError("x")) and not is_temporary(OSError("disk full"))


def test_retry_after_is_parsed_into_the_error():
    assert error_for(429, headers={"Retry-After": "12"}).retry_after == 12


# -- the loop ------------------------------------------------------------------------------------

class Script:
    """An operation that raises the given exceptions in turn, then returns "done"; counts its calls."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def policy(retries: int = 3, base: float = 0.0) -> tuple[RetryPolicy, list[float]]:
    sleeps: list[float] = []
    return RetryPolicy(retries=retries, base_delay=base, sleep=sleeps.append), sleeps


def test_temporary_failures_are_retried_then_succeed():
    retry, sleeps = policy()
    op = Script(error_for(503), RegistryUnreachableError("reset"))
    assert retry.run(op, what="x") == "done" and op.calls == 3 and len(sleeps) == 2


def test_gives_up_after_retries_plus_one_calls_and_says_so():
    retry, sleeps = policy(retries=2)
    op = Script(*[error_for(503) for _ in range(5)])
    with pytest.raises(RegistryError, match=r"gave up after 3 attempts") as err:
        retry.run(op, what="x")
    assert err.value.status == 503 and op.calls == 3 and len(sleeps) == 2


def test_permanent_failure_is_raised_at_once():
    retry, sleeps = policy()
    op = Script(error_for(404))
    with pytest.raises(NotFoundError):
        retry.run(op, what="x")
    assert op.calls == 1 and sleeps == []


def test_retry_after_is_a_floor_on_the_wait():
    retry, sleeps = policy()
    retry.run(Script(error_for(429, headers={"Retry-After": "7"})), what="x")
    assert sleeps == [7.0]


def test_httpx_errors_leave_as_registry_errors_naming_the_operation():
    retry, _ = policy(retries=1)
    request = httpx.Request("GET", "https://reg.example/v2/")
    with pytest.raises(RegistryUnreachableError, match=r"for blob abc of reg.example/g/p"):
        retry.run(Script(*[httpx.ReadError("reset", request=request)] * 2), what="blob abc of reg.example/g/p")
    with pytest.raises(RegistryError, match=r"unusable answer for manifest m: DecodingError"):
        retry.run(Script(httpx.DecodingError("bad gzip", request=request)), what="manifest m")


def test_an_operation_inside_another_runs_once_so_retries_never_multiply():
    retry, sleeps = policy(retries=3)
    inner_calls = 0

    def inner() -> str:
        nonlocal inner_calls
        inner_calls += 1
        raise error_for(503)

    def outer() -> str:
        return retry.run(inner, what="inner")

    with pytest.raises(RegistryError):
        retry.run(outer, what="outer")
    assert inner_calls == 4 and len(sleeps) == 3  # (retries + 1), not (retries + 1) ** 2


def test_other_threads_run_their_own_loop():
    """A push's pool workers each retry their own blob, even when started inside another operation."""
    retry, _ = policy(retries=2)
    op = Script(error_for(503), error_for(503))
    result: list[str] = []

    def outer() -> str:
        worker = threading.Thread(target=lambda: result.append(retry.run(op, what="blob")))
        worker.start()
        worker.join()
        return "outer"

    assert retry.run(outer, what="push") == "outer"
    assert result == ["done"] and op.calls == 3


def test_delay_grows_with_jitter_and_caps():
    backoff = RetryPolicy(base_delay=1.0, max_delay=8.0, max_retry_after=60)
    for attempt, full in enumerate([1, 2, 4, 8, 8]):
        for _ in range(20):
            assert full / 2 <= backoff.delay(attempt) <= full
    assert backoff.delay(0, retry_after=30) >= 30
    assert backoff.delay(0, retry_after=3600) == 60


# -- through the client, with MockTransport: the transport itself never retries --------------------

def test_the_transport_does_not_retry_under_the_loop():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return httpx.Response(503)

    sleeps: list[float] = []
    client = RegistryClient(RegistryOptions(use_docker_config=False, retries=2), transport=httpx.MockTransport(handler),
                            sleep=sleeps.append)
    with client, pytest.raises(RegistryError):
        client.get_manifest(parse_reference("reg.example/g/p:1"))
    assert seen == ["GET"] * 3 and len(sleeps) == 2


def test_error_detail_keeps_the_spec_fields():
    error = error_for(400, {"errors": [{"code": "name_invalid", "message": "bad", "detail": {"n": 1}}]})
    assert error.errors == (ErrorDetail("NAME_INVALID", "bad", {"n": 1}),)
