"""The root of wharfie's exceptions.

Every error a user can cause or meet derives from `WharfieError`; the CLI turns
it into one line and a non-zero exit, never a traceback. Packages add their own
subclasses (registry/errors.py, layers' UnsafePathError, builder's DockerfileError)
next to the code that raises them.
"""

from __future__ import annotations

__all__ = ["DigestMismatchError", "DockerfileError", "UnsafePathError", "WharfieError"]


class WharfieError(Exception):
    """An error meant for the user: its str() is the whole one-line message."""

    exit_code: int = 1


class DigestMismatchError(WharfieError):
    """Content read did not hash to the digest that named it."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"digest mismatch for {what}: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class UnsafePathError(WharfieError):
    """A layer entry or a path tried to reach outside its root."""


class DockerfileError(WharfieError):
    """A Dockerfile problem, carrying the file and line at fault.

    str() gives ``Dockerfile:LINE: message`` as docker users expect.
    """

    def __init__(self, message: str, *, file: str = "Dockerfile", line: int | None = None) -> None:
        self.file = file
        self.line = line
        self.reason = message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")
