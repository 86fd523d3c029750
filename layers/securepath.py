"""Resolving layer entry names inside a root directory, never outside it.

A layer is untrusted input: its names may contain `..`, be absolute, or go
through a symlink that an earlier entry (or an earlier layer) planted. We
follow umoci's discipline (it uses cyphar/filepath-securejoin): clean the
name, resolve only the *parent* directory, and let the caller handle the last
component itself without following it.

Resolution is chroot-like, as docker and containerd apply layers: a symlink
in a parent position is followed, with an absolute target taken from the
root (`lib -> /usr/lib` then `lib/x.so` lands in `usr/lib/x.so`). A relative
target that would climb above the root is refused rather than clamped: no
well-formed image needs it and it is the classic escape shape.

Every component is opened with `O_NOFOLLOW` relative to its parent's file
descriptor, so even a symlink that appears between our check and our use
makes the operation fail instead of escaping.

`open_exact` is the stricter walk for coming back to something already
created (a directory whose mode and times are applied at the end of a
layer): it follows no symlink at all, so a name that has been replaced by a
link since is reported as gone rather than resolved to something else.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Callable, Sequence
from typing import Self

from oci.errors import UnsafePathError, WharfieError

__all__ = ["MAX_SYMLINKS", "RootDir", "clean_entry_name"]

MAX_SYMLINKS = 40  # what Linux allows in one path resolution (ELOOP beyond)
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# What opening a name with O_NOFOLLOW|O_DIRECTORY answers when it is gone, a symlink or no directory.
_REPLACED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


def clean_entry_name(unsafe_name: str, *, what: str = "layer entry") -> list[str]:
    """The components of a tar entry name; refuses absolute names and `..`."""
    if unsafe_name.startswith("/"):
        raise UnsafePathError(f"{what} {unsafe_name!r}: absolute path refused")
    parts = [part for part in unsafe_name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"{what} {unsafe_name!r}: '..' component refused")
    return parts


def _mkdir_0755(parent_fd: int, name: str) -> None:
    os.mkdir(name, 0o755, dir_fd=parent_fd)


class RootDir:
    """File-descriptor based access to paths under one root directory.

    `parent(parts)` returns an `O_PATH` descriptor of the resolved parent
    directory of `parts` (owned by this object: do not close it) and the
    resolved relative path of the entry. The last resolution is cached,
    because a sorted tar writes a directory's files one after another;
    `invalidate()` must be called after anything that removes or replaces a
    directory or symlink.
    """

    def __init__(self, root: str | os.PathLike[str], *, mkdir: Callable[[int, str], None] | None = None,
                 max_depth: int | None = None) -> None:
        self.fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # How `create` makes a missing directory (parent fd, name): a caller may record what it made.
        self._mkdir = mkdir or _mkdir_0755
        # Deepest an entry may land, symlinks followed: a real tree deeper than this is what
        # recursive walks and removals (Python's included) cannot take.
        self.max_depth = max_depth
        self._cache_key: tuple[str, ...] | None = None
        self._cache: tuple[int, tuple[str, ...]] | None = None

    def close(self) -> None:
        self.invalidate()
        os.close(self.fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def invalidate(self) -> None:
        if self._cache is not None and self._cache[0] != self.fd:
            os.close(self._cache[0])
        self._cache_key = self._cache = None

    def parent(self, parts: list[str], *, create: bool, name: str) -> tuple[int, tuple[str, ...]]:
        """(fd of the resolved parent dir, resolved parent components) for entry `parts`.

        Missing directories are created (mode 0755) when `create`, as docker
        and umoci do for layers that omit a parent; else FileNotFoundError.
        """
        key = tuple(parts[:-1])
        if key == self._cache_key and self._cache is not None:
            return self._cache
        self.invalidate()
        resolved = self.resolve_dir(list(key), create=create, name=name)
        self._cache_key, self._cache = key, resolved
        return resolved

    def resolve_dir(self, parts: list[str], *, create: bool, name: str) -> tuple[int, tuple[str, ...]]:
        """Open the directory `parts` names, following symlinks as if the root were `/`.

        The caller owns the returned descriptor (unless it is `self.fd`).
        """
        todo = deque(parts)
        resolved: list[str] = []
        fd = self.fd
        links = 0
        try:
            while todo:
                part = todo.popleft()
                if part in ("", "."):
                    continue
                if part == "..":
                    if not resolved:
                        raise UnsafePathError(f"layer entry {name!r}: a symlink on its path points outside the root")
                    resolved.pop()
                    fd = self._reopen(fd, resolved)
                    continue
                st = self._lstat_or_create(fd, part, create, resolved, name)
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise UnsafePathError(f"layer entry {name!r}: too many levels of symlinks")
                    target = os.readlink(part, dir_fd=fd)
                    if target.startswith("/"):
                        resolved.clear()
                        fd = self._reopen(fd, resolved)
                    todo.extendleft(reversed(target.split("/")))
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    where = "/".join([*resolved, part])
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory", where)  # str() repr()s where
                self._check_depth(resolved, name)
                fd = self._step(fd, part)
                resolved.append(part)
        except BaseException:
            if fd != self.fd:
                os.close(fd)
            raise
        return fd, tuple(resolved)

    def open_exact(self, parts: Sequence[str]) -> int | None:
        """An `O_PATH` descriptor of the directory at exactly `parts`, following no symlink.

        None when a component is missing, a symlink or not a directory: what
        was there has been replaced. The caller owns the descriptor unless it
        is `self.fd` (empty `parts`).
        """
        fd = self.fd
        for part in parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in _REPLACED:
                    raise
                child = None
            if fd != self.fd:
                os.close(fd)
            if child is None:
                return None
            fd = child
        return fd

    def _check_depth(self, resolved: list[str], name: str) -> None:
        """Refuse to go into one more directory when an entry there would be over the depth limit."""
        if self.max_depth is not None and len(resolved) + 1 >= self.max_depth:
            raise WharfieError(f"layer entry {name!r}: lands more than {self.max_depth} components deep, "
                               f"over the path depth limit of {self.max_depth}")

    def _lstat_or_create(self, fd: int, part: str, create: bool, resolved: list[str],
                         name: str) -> os.stat_result:
        try:
            return os.stat(part, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            if not create:
                raise
        self._check_depth(resolved, name)  # before creating it, not after
        self._mkdir(fd, part)
        return os.stat(part, dir_fd=fd, follow_symlinks=False)

    def _step(self, fd: int, part: str) -> int:
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:  # ELOOP/ENOTDIR: it changed under us; fail closed
            raise UnsafePathError(f"{part!r} changed while being resolved: {exc.strerror}") from None
        finally:
            if fd != self.fd:
                os.close(fd)
        return child

    def _reopen(self, fd: int, resolved: list[str]) -> int:
        """Walk again from the root to `resolved` (all known directories, no symlinks)."""
        if fd != self.fd:
            os.close(fd)
        fd = self.fd
        for part in resolved:
            fd = self._step(fd, part)
        return fd
