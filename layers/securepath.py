"""Resolving paths inside a root directory, never outside it: the one rule of path containment.

The rule, for every path wharfie resolves in a tree it did not make (a
layer's entries, COPY/ADD sources and destinations, WORKDIR, the image's
/etc files, archives unpacked by ADD): resolve it component by component by
file descriptor, as if the root were `/`. A symlink is followed with an
absolute target taken from the root (`lib -> /usr/lib` then `lib/x.so` lands
in `usr/lib/x.so`), and `..` stops at the root, as it does in a chroot: that
is docker's semantics for COPY destinations and for symlinks inside an image.
Nothing ever resolves outside the root. Every component is opened with
`O_NOFOLLOW` relative to its parent's descriptor, so a symlink that appears
between our check and our use makes the operation fail instead of escaping.

- `resolve_in_root(root, path)`: the path a COPY destination, a WORKDIR or a
  source names; components that do not exist yet are kept as named, to be
  created;
- `open_in_root(root, path, flags)`: a file opened by descriptor (the image's
  /etc/passwd);
- `RootDir`: the same resolution for the layer extractor, which follows
  umoci's discipline (it uses cyphar/filepath-securejoin): clean the name,
  resolve only the *parent* directory, and let the caller handle the last
  component itself without following it.

Every component is opened with `O_NOFOLLOW` relative to its parent's file
descriptor, so even a symlink that appears between our check and our use
makes the operation fail instead of escaping.

`open_exact` is the stricter walk for coming back to something already
created (a directory whose mode and times are applied at the end of a
layer): it follows no symlink at all, so a name that has been replaced by a
link since is reported as gone rather than resolved to something else.

Layer extraction is stricter about input no well-formed image holds: an
entry name that is absolute or holds `..` is refused (`clean_entry_name`),
and so is a relative symlink that climbs above the root on an entry's path.
That is the classic escape shape, reported rather than silently clamped; it
refuses input, the containment itself is the same.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from oci.errors import UnsafePathError, WharfieError

__all__ = ["MAX_SYMLINKS", "RootDir", "clean_entry_name", "open_in_root", "resolve_in_root"]

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

        Strict, for layer entries: a symlink climbing above the root is refused,
        a missing directory (unless `create`) or a non-directory on the way is an
        error. The caller owns the returned descriptor (unless it is `self.fd`).
        """
        fd, resolved, _ = self.walk(parts, what=f"layer entry {name!r}", create=create)
        return fd, resolved

    def walk(self, parts: list[str], *, what: str, create: bool = False, clamp: bool = False,
             lenient: bool = False, follow_last: bool = True) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
        """Resolve `parts` by descriptor: (fd of the deepest directory reached, its components, the rest).

        `clamp`: `..` at the root stays there (a chroot), instead of an error.
        `lenient`: from the first component that is missing or no directory on,
        the rest is kept as named (`..` taking one back), instead of an error.
        `follow_last`: a symlink as the last component is followed too. The
        caller owns the returned descriptor (unless it is `self.fd`).
        """
        todo = deque(parts)
        resolved: list[str] = []
        rest: list[str] = []  # lenient: what lies past a missing component or a non-directory
        fd = self.fd
        links = 0
        try:
            while todo:
                part = todo.popleft()
                if part in ("", "."):
                    continue
                if part == "..":
                    if rest:
                        rest.pop()
                    elif resolved:
                        resolved.pop()
                        fd = self._reopen(fd, resolved)
                    elif not clamp:
                        raise UnsafePathError(f"{what}: a symlink on its path points outside the root")
                    continue
                if rest:
                    rest.append(part)
                    continue
                try:
                    st = self._lstat_or_create(fd, part, create, resolved, what)
                except FileNotFoundError:
                    if not lenient:
                        raise
                    rest.append(part)
                    continue
                if stat.S_ISLNK(st.st_mode) and (todo or follow_last):
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise UnsafePathError(f"{what}: too many levels of symlinks")
                    target = os.readlink(part, dir_fd=fd)
                    if target.startswith("/"):
                        resolved.clear()
                        fd = self._reopen(fd, resolved)
                    todo.extendleft(reversed(target.split("/")))
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    if not lenient:
                        where = "/".join([*resolved, part])
                        raise NotADirectoryError(errno.ENOTDIR, "not a directory", where)  # str() repr()s where
                    rest.append(part)
                    continue
                self._check_depth(resolved, what)
                fd = self._step(fd, part)
                resolved.append(part)
        except BaseException:
            if fd != self.fd:
                os.close(fd)
            raise
        return fd, tuple(resolved), tuple(rest)

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

    def _check_depth(self, resolved: list[str], what: str) -> None:
        """Refuse to go into one more directory when an entry there would be over the depth limit."""
        if self.max_depth is not None and len(resolved) + 1 >= self.max_depth:
            raise WharfieError(f"{what}: lands more than {self.max_depth} components deep, "
                               f"over the path depth limit of {self.max_depth}")

    def _lstat_or_create(self, fd: int, part: str, create: bool, resolved: list[str],
                         what: str) -> os.stat_result:
        try:
            return os.stat(part, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            if not create:
                raise
        self._check_depth(resolved, what)  # before creating it, not after
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


def resolve_in_root(root: str | os.PathLike[str], path: str, *, follow_last: bool = False) -> Path:
    """`root/path` resolved inside `root` by descriptor, as a chroot would (see the module docstring).

    The result never leaves `root`. Its existing part holds no symlink; what
    does not exist yet (or lies past a file) is kept as named, so the caller
    can create it, or fail on it. A symlink as the last component is followed
    only with `follow_last` (a destination that links to a directory). The
    path is for a caller that acts while nothing else changes the tree (a
    COPY, a WORKDIR: no step's program runs meanwhile).
    """
    with RootDir(root) as tree:
        fd, resolved, rest = tree.walk(path.split("/"), what=path, clamp=True, lenient=True,
                                       follow_last=follow_last)
        if fd != tree.fd:
            os.close(fd)
    return Path(root).joinpath(*resolved, *rest)


def open_in_root(root: str | os.PathLike[str], path: str, flags: int = os.O_RDONLY) -> int:
    """A descriptor of `path` inside `root`, resolved by descriptor (a final symlink followed inside `root`).

    FileNotFoundError when it does not exist; the caller owns the descriptor.
    """
    with RootDir(root) as tree:
        fd, _, rest = tree.walk(path.split("/"), what=path, clamp=True, lenient=True)
        try:
            if len(rest) > 1:
                raise FileNotFoundError(errno.ENOENT, f"{path}: no such file inside {os.fspath(root)}")
            return os.open(rest[0] if rest else ".", flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        finally:
            if fd != tree.fd:
                os.close(fd)
