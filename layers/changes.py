"""What a build step changed, as the layer writer needs to know it.

Both snapshotters (the walk in `walk.py`, the overlay upper dir in
`overlay.py`) produce a sorted list of `Change`; `writer.py` turns that list
into a tar. Keeping the value this small lets a cache or a test build one by
hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Change", "ChangeKind", "inside_any", "path_key", "sorted_changes", "validate_relpath"]

ChangeKind = Literal["add", "modify", "delete", "opaque"]
_KINDS = frozenset({"add", "modify", "delete", "opaque"})


@dataclass(frozen=True)
class Change:
    """One changed path.

    `path` is relative and posix-style, without a leading slash ("etc/passwd").
    "opaque" is a directory whose lower-layer contents are all replaced: the
    writer emits the directory and `DIR/.wh..wh..opq`; every entry that should
    exist below it must then be listed as its own "add".
    """

    path: str
    kind: ChangeKind

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown change kind {self.kind!r} for {self.path!r}")
        validate_relpath(self.path)


def validate_relpath(path: str) -> None:
    """Refuse paths that are not plain relative paths (the writer joins them to a root)."""
    if not path or path.startswith("/") or path.endswith("/"):
        raise ValueError(f"change path must be relative, without leading or trailing slash: {path!r}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(f"change path must be normalised (no '', '.' or '..' parts): {path!r}")


def path_key(path: str) -> tuple[str, ...]:
    """Sort key that keeps a directory's children together, right after it.

    Plain string order would put "a-b" between "a" and "a/b"; comparing by
    components gives a depth-first order that tools and humans expect.
    """
    return tuple(path.split("/"))


def sorted_changes(changes: Iterable[Change]) -> list[Change]:
    return sorted(changes, key=lambda change: path_key(change.path))


def inside_any(path: str, dirs: set[str]) -> bool:
    """Whether `path` is strictly below one of `dirs` (relative paths): one set lookup per ancestor, so a
    step with thousands of new directories costs linear time, not quadratic."""
    if not dirs:
        return False
    parent = path.rpartition("/")[0]
    while parent:
        if parent in dirs:
            return True
        parent = parent.rpartition("/")[0]
    return False
