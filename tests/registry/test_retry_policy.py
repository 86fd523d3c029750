"""The one retry policy: which requests are resent, how long it waits, when it gives up."""

from __future__ import annotations

import httpx
import pytest

from registry.transport import RETRY_SAFE, RetryPolicy, RetryTransport


class Inner(httpx.BaseTransport):
    """Plays a list of outcomes (a status, or an exception class) and records the methods it saw."""

    def __init__(self, *outcomes, headers=None) -> None:
        self.outcomes = list(outcomes)
        self.seen: list[str] = []
        self.headers = headers or {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.method)
        outcome = self.outcomes.pop(0) if self.outcomes else 200
        if isinstance(outcome, type) and issubclass(outcome, Exception):
            raise outcome("injected", request=request)
        return httpx.Response(outcome, headers=self.headers if outcome != 200 else {})


def send(inner: Inner, method: str = "GET", *, retries: int = 3, content=b"", retry_safe: bool = False):
    sleeps: list[float] = []
    policy = RetryPolicy(retries=retries, base_delay=0.1, sleep=sleeps.append)
    client = httpx.Client(transport=RetryTransport(inner, policy))
    ext = {RETRY_SAFE: True} if retry_safe else {}
    response = client.send(client.build_request(method, "https://r.example/v2/x", content=content, extensions=ext))
    return response.status_code, sleeps


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_idempotent_request_retried_on_temporary_status(status):
    inner = Inner(status, status)
    code, sleeps = send(inner)
    assert code == 200 and inner.seen == ["GET"] * 3 and len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 416, 501])
def test_permanent_status_not_retried(status):
    inner = Inner(status)
    assert send(inner)[0] == status and inner.seen == ["GET"]


def test_gives_up_after_retries_and_returns_the_last_answer():
    inner = Inner(503, 503, 503)
    code, sleeps = send(inner, retries=2)
    assert code == 503 and len(inner.seen) == 3 and len(sleeps) == 2


def test_retry_after_is_honoured():
    inner = Inner(429, headers={"Retry-After": "7"})
    code, sleeps = send(inner)
    assert code == 200 and sleeps[0] >= 7


def test_post_retried_only_when_not_processed_or_marked_safe():
    assert send(inner := Inner(500), "POST")[0] == 500 and inner.seen == ["POST"]
    assert send(inner := Inner(503), "POST")[0] == 200 and inner.seen == ["POST"] * 2  # 503: not processed
    assert send(inner := Inner(500), "POST", retry_safe=True)[0] == 200 and len(inner.seen) == 2
    assert send(inner := Inner(500), "PATCH")[0] == 500 and inner.seen == ["PATCH"]


def test_connection_errors():
    assert send(inner := Inner(httpx.ConnectError), "PATCH")[0] == 200 and len(inner.seen) == 2  # never sent
    with pytest.raises(httpx.ReadError):
        send(Inner(httpx.ReadError), "PATCH")  # may have been processed
    assert send(inner := Inner(httpx.ReadError, httpx.RemoteProtocolError), "GET")[0] == 200 and len(inner.seen) == 3
    with pytest.raises(httpx.ConnectError):
        send(Inner(httpx.ConnectError, httpx.ConnectError), retries=1)


def test_streamed_body_is_never_resent_here():
    inner = Inner(503)
    assert send(inner, "PUT", content=iter([b"abc"]))[0] == 503 and len(inner.seen) == 1


def test_delay_grows_with_jitter_and_caps():
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, max_retry_after=60)
    for attempt, full in enumerate([1, 2, 4, 8, 8]):
        for _ in range(20):
            assert full / 2 <= policy.delay(attempt) <= full
    assert policy.delay(0, retry_after=30) >= 30
    assert policy.delay(0, retry_after=3600) == 60
