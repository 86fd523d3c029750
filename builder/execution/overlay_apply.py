"""Folding an overlay upper dir back into the rootfs after a step, in O(change).

A RUN on an overlay leaves the rootfs untouched and its changes in `upper`;
once the layer has been written from `upper`, the rootfs must become what
the step saw, for the next step. Renames do that without copying: a new
file or directory is moved in whole, a deletion removes the path, an opaque
directory replaces the old one, and a directory that exists on both sides
only takes the new metadata (its changed children are changes of their own).
Directory times are set last, since moving children in changes them.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

from layers.changes import Change

__all__ = ["apply_upper"]

_OVERLAY_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


def apply_upper(upper: Path, root: Path, changes: Sequence[Change]) -> None:
    """Move the changes recorded in `upper` (as `changes_from_upper` read them) into `root`."""
    moved: list[str] = []
    dir_times: list[tuple[str, os.stat_result]] = []
    for change in changes:  # sorted: a parent comes before its children
        if _below_any(change.path, moved):
            continue
        src, dst = os.path.join(upper, change.path), os.path.join(root, change.path)
        if change.kind == "delete":
            _remove(dst)
            continue
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode) and change.kind != "opaque" and _is_real_dir(dst):
            _copy_metadata(src, dst, st)
            dir_times.append((dst, st))
            continue
        _remove(dst)
        os.rename(src, dst)
        if stat.S_ISDIR(st.st_mode):
            _strip_overlay_xattrs(dst)
            moved.append(change.path)
    for path, st in reversed(dir_times):
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _below_any(path: str, dirs: list[str]) -> bool:
    return any(path.startswith(d + "/") for d in dirs)


def _is_real_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    wanted = {name: os.getxattr(src, name, follow_symlinks=False)
              for name in _xattr_names(src) if not name.startswith(("trusted.overlay.", "user.overlay."))}
    for name in _xattr_names(dst):
        if name not in wanted and not name.startswith(("trusted.overlay.", "user.overlay.")):
            os.removexattr(dst, name, follow_symlinks=False)
    for name, value in wanted.items():
        os.setxattr(dst, name, value, follow_symlinks=False)


def _xattr_names(path: str) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return []
        raise


def _strip_overlay_xattrs(path: str) -> None:
    for name in _OVERLAY_XATTRS:
        try:
            os.removexattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                raise
