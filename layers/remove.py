"""Removing whatever is at a path, without ever following a symlink: the one removal helper.

A directory goes with everything below it, walked by descriptor
(`O_NOFOLLOW`, never into a symlink planted inside the tree) with an
explicit stack rather than recursion: Python 3.11's `shutil.rmtree` recurses
once per level, so a tree 1,000 deep (one `RUN mkdir -p` makes it) would end
in RecursionError. A file, symlink, device or socket is unlinked.
Extraction (a layer entry replacing what an earlier one made), COPY (a
source replacing the destination) and the overlay fold-back (a deletion, or
a directory replacing a file) all remove through here.
"""

from __future__ import annotations

import os
import stat

__all__ = ["remove_entry"]

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_PARENT = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


def remove_entry(path: str | os.PathLike[str], *, dir_fd: int | None = None, missing_ok: bool = False) -> None:
    """Remove what `path` names (relative to `dir_fd` when given); a symlink itself, never its target."""
    if dir_fd is not None:
        _remove_at(dir_fd, os.fspath(path), missing_ok)
        return
    parent, name = os.path.split(os.path.abspath(os.fspath(path)))
    if not name:
        raise ValueError(f"refusing to remove {os.fspath(path)!r}")
    parent_fd = os.open(parent, _OPEN_PARENT)
    try:
        _remove_at(parent_fd, name, missing_ok)
    finally:
        os.close(parent_fd)


def _remove_at(parent_fd: int, name: str, missing_ok: bool) -> None:
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    if stat.S_ISDIR(st.st_mode):
        _remove_tree(parent_fd, name)
    else:
        os.unlink(name, dir_fd=parent_fd)


def _remove_tree(parent_fd: int, name: str) -> None:
    """The directory `name` and everything below it, depth first, with a stack of open descriptors."""
    stack: list[tuple[int, str, int, list[str]]] = []  # (parent fd, name, fd, subdirectories left)

    def enter(at: int, entry: str) -> None:
        fd = os.open(entry, _OPEN_DIR, dir_fd=at)
        subdirs = []
        try:
            with os.scandir(fd) as entries:
                for child in entries:
                    if child.is_dir(follow_symlinks=False):
                        subdirs.append(child.name)
                    else:
                        os.unlink(child.name, dir_fd=fd)
        except BaseException:
            os.close(fd)
            raise
        stack.append((at, entry, fd, subdirs))

    try:
        enter(parent_fd, name)
        while stack:
            at, entry, fd, subdirs = stack[-1]
            if subdirs:
                enter(fd, subdirs.pop())
                continue
            stack.pop()
            os.close(fd)
            os.rmdir(entry, dir_fd=at)
    finally:
        for _, _, fd, _ in stack:
            os.close(fd)
