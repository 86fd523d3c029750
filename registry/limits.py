"""How much of a registry's answer wharfie accepts: each limit named, so an error can say which was hit.

A registry's answers are untrusted input. These bounds keep a hostile or
broken one from filling memory or the stack; real images stay orders of
magnitude below each (manifests and configs are a few KB, tokens about 1 KB,
nesting about 5 levels, images rarely above 100 layers: docker's overlay
driver stops at 128).

=====================  ==========  ===========================================
limit                  value       why that value
=====================  ==========  ===========================================
manifest size          4 MiB       distribution's and containerd's own limit
config size            8 MiB       twice that: long histories, many labels
token response size    1 MiB       JWTs are a few KB
listing size           16 MiB      distribution 2.8 sends every tag at once
                                   (about 300k tags of usual length)
small response size    1 MiB       upload bookkeeping, pings, error bodies
JSON nesting depth     64          real documents nest about 5 levels; Python
                                   recursion must never be the limit
layers per manifest    1000        well above any runnable image
=====================  ==========  ===========================================

`read_capped` and `json_too_deep` are here, below errors.py, so that every
reader of a registry's bodies (errors.py for error bodies, auth.py for tokens,
decode.py for the rest) stops at its limit and checks depth the same way
before `json.loads` could recurse. Clients ask for ``Accept-Encoding:
identity``: a compressed small body is refused, so no decompression bomb can
grow past a limit that was checked on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx

__all__ = [
    "MAX_CONFIG_SIZE",
    "MAX_JSON_DEPTH",
    "MAX_LAYERS",
    "MAX_LISTING_SIZE",
    "MAX_MANIFEST_SIZE",
    "MAX_SMALL_RESPONSE",
    "MAX_TOKEN_RESPONSE",
    "json_too_deep",
    "read_capped",
]

MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 8 << 20
MAX_TOKEN_RESPONSE = 1 << 20
MAX_LISTING_SIZE = 16 << 20
MAX_SMALL_RESPONSE = 1 << 20
MAX_JSON_DEPTH = 64
MAX_LAYERS = 1000

# A JSON string, unrolled so that a long one is matched in linear time without backtracking.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING = frozenset(b"[{")


def json_too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `raw` nests arrays/objects more than `limit` deep (brackets inside strings do not count).

    Meant for text that is then given to `json.loads`: on text that is not
    JSON the answer is only an estimate, and the parser reports the rest.
    """
    depth = 0
    for byte in _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        if byte in _OPENING:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class _CappedStream(httpx.SyncByteStream):
    """A response stream that raises `too_large()` once more than `limit` bytes have come."""

    def __init__(self, inner: httpx.SyncByteStream, limit: int, too_large: Callable[[], Exception]) -> None:
        self._inner, self._limit, self._too_large = inner, limit, too_large

    def __iter__(self) -> Iterator[bytes]:
        total = 0
        for chunk in self._inner:
            total += len(chunk)
            if total > self._limit:
                raise self._too_large()
            yield chunk

    def close(self) -> None:
        self._inner.close()


def read_capped(response: httpx.Response, limit: int, too_large: Callable[[], Exception],
                compressed: Callable[[str], Exception]) -> bytes:
    """Read `response`'s body (it stays readable for httpx afterwards) unless it is over `limit` bytes.

    Over the limit, by its Content-Length or as it arrives: the response is
    closed and `too_large()` raised. A Content-Encoding other than identity
    raises `compressed(encoding)`: its size on the wire says nothing of its size.
    """
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        response.close()
        raise compressed(encoding[:40])
    declared = response.headers.get("content-length", "")
    # A HEAD answer declares the size of what a GET would send (a blob's, for a layer), and carries nothing.
    if declared.isdigit() and int(declared) > limit and response.request.method != "HEAD":
        response.close()
        raise too_large()
    if isinstance(response.stream, httpx.SyncByteStream):
        response.stream = _CappedStream(response.stream, limit, too_large)
    try:
        data = response.read()
    except BaseException:
        response.close()
        raise
    if len(data) > limit:  # a body httpx had read already (a MockTransport's)
        raise too_large()
    return data
