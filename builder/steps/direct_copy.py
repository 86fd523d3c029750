"""A COPY's layer described from its sources, without copying anything into the rootfs.

When a COPY only creates paths (its destination does not exist yet), what
`copy_into` would do and what the walk would then find are known from the
sources and the few rootfs directories on the way: the missing parents made
0755 by the copy's owner, the destination's entries with the sources'
modes and times and the copy's owners, and the nearest existing ancestor,
whose mtime the copy moves. `plan_direct_copy` lists exactly those entries,
as `write_layer` would have written them from the tree (ancestors
included, xattrs only where the tree has them, hard links among the sources
kept); the engine writes the layer straight from the context and puts the
files into the rootfs only if a later step needs them
(builder/engine/direct_copy.py). Anything else (an existing destination, a
FIFO, several sources, --parents, heredocs, ADD) gets `None`: the COPY then
runs as always.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from builder.steps.copy import CopyOptions, follow_source, safe_join
from layers.fsmeta import read_xattrs
from layers.writer import PlannedEntry

__all__ = ["DirectCopy", "plan_direct_copy"]


class DirectCopy:
    """The planned entries of one COPY, and the rootfs path (relative) under which it puts files."""

    def __init__(self, entries: list[PlannedEntry], prefix: str) -> None:
        self.entries = entries
        self.prefix = prefix


def plan_direct_copy(rootfs: Path, src_root: Path, sources: list[Path], dest: str, *, workdir: str,
                     options: CopyOptions, what: str, now_ns: int,
                     ignored: Callable[[str], bool]) -> DirectCopy | None:
    """The layer entries `copy_into` + a walk would produce, when the copy only creates paths; else None."""
    if len(sources) != 1 or options.link:
        return None
    dest_abs = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
    to_dir = dest.endswith(("/", "/.")) or dest in (".", "")
    target = safe_join(rootfs, dest_abs, follow_last=True)
    src = follow_source(src_root, sources[0], what)
    is_dir = src.is_dir() and not src.is_symlink()
    if is_dir:
        place_at = target
    elif os.path.lexists(target) and target.is_dir() and not target.is_symlink():
        place_at = target / sources[0].name
    else:
        place_at = target / sources[0].name if to_dir else target
    if os.path.lexists(place_at) or place_at == rootfs:
        return None  # replacing or merging into what is there: the copy itself knows how
    rel = place_at.relative_to(rootfs).as_posix()
    if ignored(rel):
        return None
    existing, missing = _split_ancestors(rootfs, place_at)
    if existing is None:
        return None  # something on the way is not a directory
    parent_uid, parent_gid = (0, 0) if options.keep_owner else (options.uid, options.gid)
    entries = list(_ancestor_entries(rootfs, existing, now_ns))
    for directory in missing:
        entries.append(PlannedEntry(directory, "dir", parent_uid, parent_gid, 0o755, now_ns))
    if is_dir:
        entries.append(PlannedEntry(rel, "dir", parent_uid, parent_gid, 0o755, now_ns))
        children = _children(src_root, src, rel, options)
    else:
        children = _one(src_root, src, rel, options)
    try:
        entries.extend(children)
    except _Unsupported:
        return None
    return DirectCopy(entries, rel)


class _Unsupported(Exception):
    """A source the planner leaves to the copy itself (a FIFO)."""


def _split_ancestors(rootfs: Path, place_at: Path) -> tuple[Path | None, list[str]]:
    """The nearest existing ancestor of `place_at` (None if it is not a plain directory) and the missing ones."""
    missing: list[str] = []
    for parent in place_at.parents:
        if parent == rootfs or os.path.lexists(parent):
            st = os.lstat(parent)
            return (parent if stat.S_ISDIR(st.st_mode) else None), list(reversed(missing))
        missing.append(parent.relative_to(rootfs).as_posix())
    return None, []


def _ancestor_entries(rootfs: Path, existing: Path, now_ns: int) -> Iterator[PlannedEntry]:
    """The existing directories down to the nearest one, as the tree has them; the copy moves the nearest's mtime."""
    if existing == rootfs:
        return
    rel = existing.relative_to(rootfs).as_posix()
    parts = rel.split("/")
    for depth in range(1, len(parts) + 1):
        name = "/".join(parts[:depth])
        path = rootfs / name
        st = os.lstat(path)
        mtime = now_ns if depth == len(parts) else st.st_mtime_ns
        yield PlannedEntry(name, "dir", st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), mtime,
                           xattrs=read_xattrs(path))


def _entry(src: Path, name: str, st: os.stat_result, options: CopyOptions) -> PlannedEntry:
    uid, gid = (st.st_uid, st.st_gid) if options.keep_owner else (options.uid, options.gid)
    mode = options.chmod if options.chmod is not None else stat.S_IMODE(st.st_mode)
    link_key = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
    if stat.S_ISDIR(st.st_mode):
        return PlannedEntry(name, "dir", uid, gid, mode, st.st_mtime_ns)
    if stat.S_ISLNK(st.st_mode):
        return PlannedEntry(name, "symlink", uid, gid, 0o777, st.st_mtime_ns, source=os.fspath(src),
                            link_key=link_key)
    if stat.S_ISREG(st.st_mode):
        return PlannedEntry(name, "file", uid, gid, mode, st.st_mtime_ns, source=os.fspath(src), link_key=link_key)
    raise _Unsupported(name)


def _one(src_root: Path, src: Path, name: str, options: CopyOptions) -> Iterator[PlannedEntry]:
    yield from _place(src_root, src, name, options)


def _place(src_root: Path, src: Path, name: str, options: CopyOptions) -> Iterator[PlannedEntry]:
    st = os.lstat(src)
    yield _entry(src, name, st, options)
    if stat.S_ISDIR(st.st_mode):
        yield from _children(src_root, src, name, options)


def _children(src_root: Path, src: Path, name: str, options: CopyOptions) -> Iterator[PlannedEntry]:
    """A directory's contents, in `copy_into`'s order, less what .dockerignore or --exclude leave out."""
    pending = [(src, name)]
    while pending:
        directory, prefix = pending.pop()
        for child in sorted(os.listdir(directory)):
            path = directory / child
            if options.excluded and options.excluded(str(path.relative_to(src_root))):
                continue
            st = os.lstat(path)
            yield _entry(path, f"{prefix}/{child}", st, options)
            if stat.S_ISDIR(st.st_mode):
                pending.append((path, f"{prefix}/{child}"))
