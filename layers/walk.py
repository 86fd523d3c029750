"""The walk snapshotter: record a tree before a step, walk it again after, diff.

This is the fallback that works everywhere (no mount privileges needed), at
the cost of a full walk per step. Metadata comparison is the default
(kaniko's "redo" mode); `mode="full"` also hashes every regular file so a
change that keeps size and mtime is still seen (kaniko's "full").

`os.scandir` is used because its entries carry the names without an extra
`listdir`, and `DirEntry.stat(follow_symlinks=False)` is one `lstat` per file.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from layers.changes import Change, inside_any, path_key
from layers.fsmeta import FileType, file_type, read_xattrs
from oci.digest import sha256_stream

__all__ = ["FileState", "Snapshot", "SnapshotMode", "diff", "mount_points", "unescape_mount_field"]

log = logging.getLogger(__name__)

SnapshotMode = Literal["metadata", "full"]


class FileState(NamedTuple):
    """What the snapshot remembers of one path (a tuple: rootfs trees have 100k+ paths)."""

    type: FileType
    mode: int  # permission bits incl. setuid/setgid/sticky
    uid: int
    gid: int
    size: int
    mtime_ns: int
    inode: int
    device: int  # st_dev: with inode, the file's identity
    rdev: int  # device numbers of a char/block node
    nlink: int
    link_target: str | None
    xattrs: tuple[tuple[str, bytes], ...]
    content: str | None = None  # sha256 hex, only in "full" mode

    def same_as(self, other: FileState) -> bool:
        """Whether a step left this path alone, as far as a layer is concerned."""
        if self.type != other.type:
            return False
        if self.type == "dir":
            # A directory's nlink moves with its subdirectories, which are
            # changes of their own; its size is filesystem bookkeeping.
            return self._replace(nlink=0, size=0) == other._replace(nlink=0, size=0)
        # A new hard link to an unchanged file changes its nlink: reporting it as
        # modified puts both names in the layer, so the link survives (kaniko #1743).
        return self == other


@dataclass(frozen=True)
class Snapshot:
    root: Path
    entries: dict[str, FileState]
    mode: SnapshotMode = "metadata"

    @classmethod
    def take(cls, root: Path, ignore: Iterable[str] = (), *, mode: SnapshotMode = "metadata") -> Snapshot:
        """Record every path under `root` except the `ignore`d paths and their subtrees."""
        root = Path(root)
        skip = frozenset(p.strip("/") for p in ignore)
        entries = dict(_walk(str(root), "", skip, mode == "full"))
        return cls(root, entries, mode)


def _walk(top: str, prefix: str, skip: frozenset[str], hash_content: bool) -> Iterator[tuple[str, FileState]]:
    # Iterative, so deep trees do not hit the recursion limit.
    pending = [(top, prefix)]
    while pending:
        directory, rel_dir = pending.pop()
        try:
            scanner = os.scandir(directory)
        except FileNotFoundError:
            if directory == top:
                raise
            log.debug("directory vanished during the walk: %s", directory)  # a step's process still running
            continue
        with scanner:
            for entry in scanner:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if rel in skip:
                    continue
                try:
                    state = _state(entry, hash_content)
                except FileNotFoundError:
                    continue
                yield rel, state
                if state.type == "dir":
                    pending.append((entry.path, rel))


def _state(entry: os.DirEntry[str], hash_content: bool) -> FileState:
    st = entry.stat(follow_symlinks=False)
    kind = file_type(st.st_mode)
    return FileState(
        type=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        inode=st.st_ino,
        device=st.st_dev,
        rdev=st.st_rdev if kind in ("char", "block") else 0,
        nlink=st.st_nlink,
        link_target=os.readlink(entry.path) if kind == "symlink" else None,
        xattrs=read_xattrs(entry.path),
        content=_hash_file(entry.path) if hash_content and kind == "file" else None,
    )


def _hash_file(path: str) -> str:
    with open(path, "rb", buffering=0) as handle:
        return sha256_stream(handle)[0].hex


def diff(before: Snapshot, after: Snapshot) -> list[Change]:
    """The changes that turn `before` into `after`, sorted by path components.

    A deleted directory is one delete (its children go with it); a directory
    replaced by something else implies its children's removal; a directory
    that was removed and created anew (a new inode) is "opaque" and everything
    below it is re-added, since none of the lower content survives.
    """
    old, new = before.entries, after.entries
    changes: list[Change] = []
    opaque_dirs: set[str] = set()
    for path in sorted(new, key=path_key):
        state = new[path]
        if inside_any(path, opaque_dirs):
            changes.append(Change(path, "add"))
            continue
        previous = old.get(path)
        if previous is None:
            changes.append(Change(path, "add"))
        elif previous.type == "dir" == state.type and _recreated(previous, state):
            opaque_dirs.add(path)
            changes.append(Change(path, "opaque"))
        elif not previous.same_as(state):
            changes.append(Change(path, "modify"))
    for path in old:
        if path in new:
            continue
        parent = path.rpartition("/")[0]
        if parent and (parent not in new or new[parent].type != "dir" or parent in opaque_dirs):
            continue  # removed along with (or hidden by) its parent's change
        changes.append(Change(path, "delete"))
    changes.sort(key=lambda change: path_key(change.path))
    return changes


def _recreated(previous: FileState, state: FileState) -> bool:
    return previous.device == state.device and previous.inode != state.inode


def mount_points(root: Path, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Relative paths of the mounts strictly below `root`: volumes, /proc, /sys, secrets...

    What a build running in place (kaniko-style, root = "/") must leave out of
    its snapshots and never clear, since none of it belongs to the image. The
    table is read as bytes and its escapes decoded as bytes, so a mount at
    `/srv/café` (raw UTF-8 or `\\303\\251`), or with a space or a newline in
    its name, comes back as the path the filesystem calls it.
    """
    top = os.fsencode(os.path.realpath(root))
    found = []
    with open(mountinfo, "rb") as handle:
        for line in handle:
            fields = line.rstrip(b"\n").split(b" ")
            if len(fields) < 5:
                continue
            point = unescape_mount_field(fields[4])
            rel = os.path.relpath(point, top)
            if rel != b"." and rel != b".." and not rel.startswith(b"../"):
                found.append(os.fsdecode(rel))
    return sorted(set(found), key=path_key)


_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")


def unescape_mount_field(field: bytes) -> bytes:
    """A mount table field as the path's bytes: the kernel writes space, tab, newline and backslash as `\\ooo`."""
    return _OCTAL_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), field)
