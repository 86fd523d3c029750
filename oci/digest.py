"""Content digests: the one place wharfie hashes content.

A `Digest` is the value type (``sha256:<hex>``); `Hasher` counts bytes while it
hashes, `HashingWriter` hashes what passes through on the way to a file, and
`VerifyingReader` checks a download against the digest that named it as it is
read, so no blob is ever read twice to be verified.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from oci.errors import DigestMismatchError, WharfieError

__all__ = ["CHUNK", "Digest", "Hasher", "HashingWriter", "VerifyingReader", "sha256_stream"]

CHUNK = 1 << 20  # 1 MiB: large enough that per-call overhead vanishes, small enough for memory.

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-fA-F0-9=_-]+)$")


@dataclass(frozen=True, order=True)
class Digest:
    """An OCI content digest, e.g. ``sha256:e3b0...``."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        match = _DIGEST_RE.match(text)
        if not match:
            raise WharfieError(f"invalid digest {text!r}: expected ALGORITHM:HEX")
        algorithm, hexpart = match.group(1), match.group(2)
        want = _HEX_LENGTH.get(algorithm)
        if want is None:
            raise WharfieError(f"invalid digest {text!r}: unsupported algorithm {algorithm}")
        if len(hexpart) != want or not re.fullmatch(r"[a-f0-9]+", hexpart):
            raise WharfieError(f"invalid digest {text!r}: expected {want} lowercase hex digits")
        return cls(algorithm, hexpart)

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        return cls("sha256", hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        return self.hex[:12]


class Hasher:
    """A digest (sha256 unless told) plus a byte count, fed chunk by chunk."""

    def __init__(self, algorithm: str = "sha256") -> None:
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


class HashingWriter:
    """A write-only stream that hashes and counts what it forwards."""

    def __init__(self, target: _Writable, algorithm: str = "sha256") -> None:
        self._target = target
        self.hasher = Hasher(algorithm)

    def write(self, data: bytes | memoryview) -> int:
        self.hasher.update(data)
        self._target.write(data)  # type: ignore[arg-type]
        return len(data)

    def flush(self) -> None:
        flush = getattr(self._target, "flush", None)
        if flush is not None:
            flush()

    @property
    def digest(self) -> Digest:
        return self.hasher.digest()

    @property
    def size(self) -> int:
        return self.hasher.size


class VerifyingReader:
    """Reads through `source`, raising `DigestMismatchError` at EOF on a mismatch.

    The size is checked too when it is known, so a truncated body is caught
    even before the hash is compared.
    """

    def __init__(self, source: BinaryIO, expected: Digest, *, size: int | None = None, what: str = "blob") -> None:
        self._source = source
        self._expected = expected
        self._size = size
        self._what = what
        self._hasher = Hasher(expected.algorithm)  # a sha512-named blob is checked with sha512
        self._done = False

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        if data:
            self._hasher.update(data)
            if self._size is not None and self._hasher.size > self._size:
                raise DigestMismatchError(self._what, str(self._expected), f"more than {self._size} bytes")
        elif not self._done and n != 0:
            self._done = True
            self.check()
        return data

    def check(self) -> None:
        actual = self._hasher.digest()
        if actual != self._expected:
            raise DigestMismatchError(self._what, str(self._expected), str(actual))
        if self._size is not None and self._hasher.size != self._size:  # right bytes, wrong descriptor
            raise DigestMismatchError(self._what, f"{self._size} bytes", f"{self._hasher.size} bytes")


def sha256_stream(reader: BinaryIO, *, chunk: int = CHUNK) -> tuple[Digest, int]:
    """Hash a stream to its end; returns the digest and the number of bytes."""
    hasher = Hasher()
    while True:
        data = reader.read(chunk)
        if not data:
            return hasher.digest(), hasher.size
        hasher.update(data)
