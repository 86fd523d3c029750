"""Reading file metadata the way a layer needs it: type, xattrs, without following symlinks.

Shared by the walk snapshotter and the tar writer so both agree on what a
file "is" (a change the walk sees is exactly a difference the tar records).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Literal

__all__ = ["IGNORED_XATTR_PREFIXES", "OVERLAY_XATTR_PREFIXES", "FileType", "file_type", "read_xattrs"]

FileType = Literal["file", "dir", "symlink", "char", "block", "fifo", "socket"]

# Overlay's private bookkeeping (origin, opaque, redirect, ...) must never leak
# into a layer, and SELinux labels belong to the host, not the image (docker
# drops them too).
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
IGNORED_XATTR_PREFIXES = (*OVERLAY_XATTR_PREFIXES, "security.selinux")

# Filesystems without xattr support (or xattrs on a symlink in the user.* namespace)
# answer with these; treat them as "no xattrs".
_NO_XATTRS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.EPERM})


def file_type(mode: int) -> FileType:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISCHR(mode):
        return "char"
    if stat.S_ISBLK(mode):
        return "block"
    if stat.S_ISFIFO(mode):
        return "fifo"
    return "socket"


def read_xattrs(path: str | os.PathLike[str], *, keep_private: bool = False) -> tuple[tuple[str, bytes], ...]:
    """The xattrs of `path` (not following a symlink), sorted by name, private ones dropped."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _NO_XATTRS:
            return ()
        raise
    out = []
    for name in sorted(names):
        if not keep_private and name.startswith(IGNORED_XATTR_PREFIXES):
            continue
        try:
            out.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError as exc:
            if exc.errno not in _NO_XATTRS:
                raise
    return tuple(out)
