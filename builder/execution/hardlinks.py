"""Hard links kept whole across an overlay step.

An overlay copies a lower file up on its first write, and without the
`index` feature (which a rootless overlay, mounted with `userxattr`, cannot
have) the copy is a new inode: `echo more >> /data/hard` would change
`/data/hard` and leave `/data/real/file`, its other name, as it was. The step
would see, and its layer record, two different files, where any filesystem
(and the walk snapshotter) gives one.

So before an overlay step every regular file of the rootfs with more than one
name there is copied up by us, as one upper inode carrying all of its names:
the step then writes to a file all its names share. After the step, a group
whose upper inode is as it was (content, metadata, names) leaves the upper
dir again, with the directories made only to hold it, so only what the step
changed reaches the layer. Replacing a name (`rm`, then create) breaks the
link there as it would anywhere.

Finding the groups costs one `lstat` per entry of the rootfs; copying them,
the size of the multi-linked files (a Debian base: a handful, perl the
largest).
"""

from __future__ import annotations

import errno
import filecmp
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from layers.fsmeta import OVERLAY_XATTR_PREFIXES

__all__ = ["LinkedFiles", "find_link_groups"]


def find_link_groups(root: Path) -> list[tuple[str, ...]]:
    """The names (relative, sorted) of every regular file under `root` that has more than one name there."""
    by_inode: dict[tuple[int, int], list[str]] = {}
    pending = [(os.fspath(root), "")]
    while pending:
        directory, rel_dir = pending.pop()
        with os.scandir(directory) as scanner:
            for entry in scanner:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, rel))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if st.st_nlink > 1:
                        by_inode.setdefault((st.st_dev, st.st_ino), []).append(rel)
    return sorted(tuple(sorted(names)) for names in by_inode.values() if len(names) > 1)


@dataclass(frozen=True)
class _Group:
    names: tuple[str, ...]
    inode: tuple[int, int]  # of the upper copy
    lower: os.stat_result


@dataclass
class LinkedFiles:
    """The multi-linked files of one overlay step, copied up before it and settled after it."""

    root: Path
    upper: Path
    groups: list[_Group] = field(default_factory=list)
    made_dirs: list[tuple[str, os.stat_result]] = field(default_factory=list)  # (rel, the lower dir's stat)

    @classmethod
    def copy_up(cls, root: Path, upper: Path) -> LinkedFiles:
        """Give every multi-linked file of `root` one inode in `upper` with all of its names."""
        linked = cls(root, upper)
        for names in find_link_groups(root):
            linked._copy_group(names)
        for rel, lower in reversed(linked.made_dirs):  # deepest first: making children moved their times
            os.utime(os.path.join(upper, rel), ns=(lower.st_atime_ns, lower.st_mtime_ns), follow_symlinks=False)
        return linked

    def settle(self) -> None:
        """After the step: take out of `upper` every group, and made directory, the step left as it was."""
        made = {rel: os.lstat(os.path.join(self.upper, rel)) for rel, _ in self.made_dirs
                if os.path.isdir(os.path.join(self.upper, rel))}
        for group in self.groups:
            present = [name for name in group.names if self._same_inode(name, group.inode)]
            if present and self._unchanged(group, present):
                for name in present:
                    os.unlink(os.path.join(self.upper, name))
        for rel, lower in reversed(self.made_dirs):
            path = os.path.join(self.upper, rel)
            after = made.get(rel)
            if after is not None and not os.listdir(path) and _same_metadata(after, lower) \
                    and not _overlay_xattrs(path):
                os.rmdir(path)

    def _copy_group(self, names: tuple[str, ...]) -> None:
        first = names[0]
        lower_path = os.path.join(self.root, first)
        lower = os.lstat(lower_path)
        for name in names:
            self._make_parents(name)
        upper_path = os.path.join(self.upper, first)
        _copy_file(lower_path, upper_path, lower)
        if _xattrs(upper_path) != _xattrs(lower_path):
            os.unlink(upper_path)  # an attribute we may not set here: leave this group to the overlay
            return
        for name in names[1:]:
            os.link(upper_path, os.path.join(self.upper, name))
        copied = os.lstat(upper_path)
        self.groups.append(_Group(names, (copied.st_dev, copied.st_ino), lower))

    def _make_parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            rel = "/".join(parts[:depth])
            path = os.path.join(self.upper, rel)
            if os.path.lexists(path):
                continue
            lower = os.lstat(os.path.join(self.root, rel))
            os.mkdir(path, 0o700)
            _copy_metadata(os.path.join(self.root, rel), path, lower)
            self.made_dirs.append((rel, lower))

    def _same_inode(self, name: str, inode: tuple[int, int]) -> bool:
        try:
            st = os.lstat(os.path.join(self.upper, name))
        except FileNotFoundError:
            return False
        return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == inode

    def _unchanged(self, group: _Group, present: list[str]) -> bool:
        path = os.path.join(self.upper, present[0])
        st = os.lstat(path)
        return (st.st_nlink == len(present) and _same_metadata(st, group.lower)
                and _xattrs(path) == _xattrs(os.path.join(self.root, group.names[0]))
                and filecmp.cmp(path, os.path.join(self.root, group.names[0]), shallow=False))


def _same_metadata(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_mode, a.st_uid, a.st_gid, a.st_mtime_ns) == (b.st_mode, b.st_uid, b.st_gid, b.st_mtime_ns) and (
        stat.S_ISDIR(a.st_mode) or a.st_size == b.st_size)


def _copy_file(src: str, dst: str, st: os.stat_result) -> None:
    source = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        target = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with open(source, "rb", closefd=False) as reader, open(target, "wb", closefd=False) as writer:
                shutil.copyfileobj(reader, writer)
            _set_metadata(target, src, st)
        finally:
            os.close(target)
    finally:
        os.close(source)


def _copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    fd = os.open(dst, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        _set_metadata(fd, src, st)
    finally:
        os.close(fd)


def _set_metadata(fd: int, src: str, st: os.stat_result) -> None:
    # Owner first: a chown clears set-id bits and file capabilities, which come after it.
    os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    for name, value in _xattrs(src).items():
        try:
            os.setxattr(fd, name, value)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    return {name: os.getxattr(path, name, follow_symlinks=False)
            for name in names if not name.startswith(OVERLAY_XATTR_PREFIXES)}


def _overlay_xattrs(path: str) -> bool:
    try:
        return any(name.startswith(OVERLAY_XATTR_PREFIXES) for name in os.listxattr(path, follow_symlinks=False))
    except OSError:
        return False
