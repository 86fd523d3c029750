"""Turn a list of changes into a deterministic, compressed tar layer in one streaming pass.

Entries come out sorted by path components, every parent directory before
its children (taken from the source tree when it is not itself a change, so
an extractor never has to invent one), deletions as `.wh.NAME`, opaque
directories as the directory followed by `DIR/.wh..wh..opq`, and a second
name of an inode already in the layer as a hard link to the first. File
contents are read in 1 MiB chunks and holes of sparse files are produced
without reading them, so memory stays flat whatever the layer size.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from layers.changes import Change, path_key
from layers.compress import new_compressor
from layers.fsmeta import read_xattrs
from layers.sink import TarSink
from layers.tarheaders import (
    END_OF_ARCHIVE,
    OPAQUE_MARKER,
    WHITEOUT_PREFIX,
    entry_header,
    padding,
    tar_type,
    whiteout_header,
)
from oci.blobstore import BlobStore
from oci.digest import CHUNK
from oci.errors import UnsafePathError, WharfieError
from oci.growing_blob import GrowingBlob
from oci.layer import StoredLayer
from oci.mediatypes import layer_media_type
from oci.models import Descriptor

__all__ = ["LayerEntry", "PlannedEntry", "plan_entries", "write_layer", "write_planned_layer", "write_tree_layer"]

log = logging.getLogger(__name__)

_ZEROS = bytes(CHUNK)


@dataclass(frozen=True)
class LayerEntry:
    """One tar entry to write: a file from the source tree, or a whiteout marker."""

    name: str
    kind: Literal["path", "whiteout", "opaque"]  # "opaque": the `.wh..wh..opq` marker of dir `name`

    @property
    def tar_name(self) -> str:
        if self.kind == "path":
            return self.name
        if self.kind == "opaque":
            return f"{self.name}/{OPAQUE_MARKER}"
        parent, _, base = self.name.rpartition("/")
        return f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base

    @property
    def sort_key(self) -> tuple[str, ...]:
        if self.kind == "opaque":
            return path_key(self.name) + ("",)  # first among the directory's children
        return path_key(self.tar_name)


def plan_entries(changes: Sequence[Change], source_root: Path) -> list[LayerEntry]:
    """The sorted entries of the layer for `changes`, parents included."""
    root = os.fspath(source_root)
    listed = {change.path for change in changes if change.kind != "delete"}
    entries: dict[tuple[str, str], LayerEntry] = {}
    checked_parents: set[str] = set()
    for change in changes:
        name = change.path
        if name.rpartition("/")[2].startswith(WHITEOUT_PREFIX):
            raise WharfieError(f"cannot store {name!r} in a layer: names starting with {WHITEOUT_PREFIX} mean deletion")
        _add_parents(name, root, listed, checked_parents, entries)
        if change.kind == "delete":
            entries[(name, "whiteout")] = LayerEntry(name, "whiteout")
            continue
        entries[(name, "path")] = LayerEntry(name, "path")
        if change.kind == "opaque":
            entries[(name, "opaque")] = LayerEntry(name, "opaque")
    return sorted(entries.values(), key=lambda entry: entry.sort_key)


def _add_parents(name: str, root: str, listed: set[str], checked: set[str],
                 entries: dict[tuple[str, str], LayerEntry]) -> None:
    parent = name.rpartition("/")[0]
    while parent and parent not in checked:
        checked.add(parent)
        # Reading through a symlinked parent could pull in files from outside the tree.
        if not stat.S_ISDIR(os.lstat(os.path.join(root, parent)).st_mode):
            raise UnsafePathError(f"{name}: parent {parent} in {root} is not a directory")
        if parent not in listed:
            entries[(parent, "path")] = LayerEntry(parent, "path")
        parent = parent.rpartition("/")[0]


def write_layer(
    changes: Sequence[Change],
    source_root: Path,
    store: BlobStore,
    *,
    compression: str = "gzip",
    level: int | None = None,
    epoch: int | None = None,
    oci: bool = True,
    growing: GrowingBlob | None = None,
) -> StoredLayer:
    """Write the layer holding `changes` (read from `source_root`) into `store`.

    `epoch` (SOURCE_DATE_EPOCH, --reproducible) clamps every mtime to at most
    it. diff_id, digest and size are computed while the blob is written. With
    `growing`, the blob can be read (pushed) while it is written.
    """
    entries = plan_entries(changes, Path(source_root))
    return _store_tar(store, compression, level, oci, len(entries),
                      lambda sink: _TarWriter(os.fspath(source_root), sink, epoch).write_all(entries), growing)


def _store_tar(store: BlobStore, compression: str, level: int | None, oci: bool, count: int,
               write_entries: Callable[[TarSink], None], growing: GrowingBlob | None) -> StoredLayer:
    """Compress the tar `write_entries` streams (then its end) into `store`; its digests come from the one pass."""
    with store.writer(what="layer", growing=growing) as blob:
        sink = TarSink(blob, new_compressor(compression, level))
        try:
            write_entries(sink)
            sink.write(END_OF_ARCHIVE)
            diff_id, tar_size = sink.close()
        except BaseException:
            sink.abort()
            raise
    log.debug("layer %s: %d entries, tar %d bytes, blob %d bytes", blob.digest, count, tar_size, blob.size)
    return StoredLayer(Descriptor(layer_media_type(compression, oci=oci), blob.digest, blob.size), diff_id, store)


@dataclass(frozen=True)
class PlannedEntry:
    """An entry of a layer whose files are not in any tree yet (a COPY written straight from its sources).

    `source` is what to read: a regular file's content or a symlink's target; a directory needs none.
    Owner, mode and time are the entry's own, not the source's; entries sharing a `link_key` are one
    inode, written once and then as hard links to the first (in path order), as `write_layer` does.
    """

    name: str
    kind: Literal["dir", "file", "symlink"]
    uid: int
    gid: int
    mode: int
    mtime_ns: int
    source: str | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()
    link_key: tuple[int, int] | None = None


@dataclass(frozen=True)
class _Meta:
    """The stat fields `entry_header` reads, for an entry described rather than found on disk."""

    st_mode: int
    st_uid: int
    st_gid: int
    st_mtime: float
    st_size: int = 0
    st_rdev: int = 0


def write_planned_layer(
    entries: Sequence[PlannedEntry],
    store: BlobStore,
    *,
    compression: str = "gzip",
    level: int | None = None,
    epoch: int | None = None,
    oci: bool = True,
    growing: GrowingBlob | None = None,
) -> StoredLayer:
    """Write a layer of `entries` (every parent listed, in any order) the way `write_layer` writes a tree."""
    ordered = sorted(entries, key=lambda entry: path_key(entry.name))
    for entry in ordered:
        if entry.name.rpartition("/")[2].startswith(WHITEOUT_PREFIX):
            raise WharfieError(f"cannot store {entry.name!r} in a layer: names starting with {WHITEOUT_PREFIX} "
                               "mean deletion")
    first_names: dict[tuple[int, int], str] = {}

    def write_entries(sink: TarSink) -> None:
        for entry in ordered:
            _write_planned(sink, entry, first_names, epoch)

    return _store_tar(store, compression, level, oci, len(ordered), write_entries, growing)


_KIND_BITS = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "symlink": stat.S_IFLNK}


def _write_planned(sink: TarSink, entry: PlannedEntry, first_names: dict[tuple[int, int], str],
                   epoch: int | None) -> None:
    meta = _Meta(_KIND_BITS[entry.kind] | entry.mode, entry.uid, entry.gid, entry.mtime_ns / 1e9)
    if entry.link_key is not None:
        first = first_names.setdefault(entry.link_key, entry.name)
        if first != entry.name:
            sink.write(entry_header(entry.name, meta, hardlink_to=first, xattrs=entry.xattrs,
                                    epoch=epoch))
            return
    if entry.kind == "symlink":
        assert entry.source is not None
        sink.write(entry_header(entry.name, meta, link_target=os.readlink(entry.source),
                                xattrs=entry.xattrs, epoch=epoch))
    elif entry.kind == "dir":
        sink.write(entry_header(entry.name, meta, xattrs=entry.xattrs, epoch=epoch))
    else:
        assert entry.source is not None
        _write_regular_file(sink, entry.name, entry.source,
                            lambda st: entry_header(entry.name, replace(meta, st_size=st.st_size),
                                                    xattrs=entry.xattrs, epoch=epoch))


def write_tree_layer(
    root: Path,
    store: BlobStore,
    *,
    compression: str = "gzip",
    level: int | None = None,
    epoch: int | None = None,
    oci: bool = True,
) -> StoredLayer:
    """Write every path under `root` (not `root` itself) as one layer: COPY into scratch, base images."""
    changes = [Change(path, "add") for path in _all_paths(os.fspath(root))]
    return write_layer(changes, Path(root), store, compression=compression, level=level, epoch=epoch, oci=oci)


def _all_paths(root: str) -> Iterator[str]:
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as scanner:
            for entry in scanner:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                yield rel
                if entry.is_dir(follow_symlinks=False):
                    pending.append(rel)


class _TarWriter:
    """Streams planned entries as tar bytes into a sink."""

    def __init__(self, root: str, sink: TarSink, epoch: int | None) -> None:
        self._root = root
        self._sink = sink
        self._epoch = epoch
        self._first_name: dict[tuple[int, int], str] = {}  # (dev, ino) -> first path, for hard links

    def write_all(self, entries: Sequence[LayerEntry]) -> None:
        for entry in entries:
            if entry.kind == "path":
                self._write_path(entry.name)
            else:
                self._sink.write(whiteout_header(entry.tar_name))

    def _write_path(self, name: str) -> None:
        path = os.path.join(self._root, name)
        st = os.lstat(path)
        if tar_type(st.st_mode) is None:
            log.warning("skipping socket %s: a tar cannot hold it", name)
            return
        xattrs = read_xattrs(path)
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            first = self._first_name.setdefault((st.st_dev, st.st_ino), name)
            if first != name:
                self._sink.write(entry_header(name, st, hardlink_to=first, xattrs=xattrs, epoch=self._epoch))
                return
        if stat.S_ISREG(st.st_mode):
            self._write_file(name, path, xattrs)
            return
        target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
        self._sink.write(entry_header(name, st, link_target=target, xattrs=xattrs, epoch=self._epoch))

    def _write_file(self, name: str, path: str, xattrs: tuple[tuple[str, bytes], ...]) -> None:
        _write_regular_file(self._sink, name, path, lambda st: entry_header(name, st, xattrs=xattrs, epoch=self._epoch))


def _write_regular_file(sink: TarSink, name: str, path: str, header: Callable[[os.stat_result], bytes]) -> None:
    """A regular file's header (made from its fstat: the size promised is the size then read), data, padding."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        sink.write(header(st))
        written = 0
        for chunk in _file_chunks(fd, st.st_size):
            sink.write(chunk)
            written += len(chunk)
    finally:
        os.close(fd)
    if written < st.st_size:
        # The file shrank while we read it (a process still writing): keep the tar valid.
        log.warning("%s shrank while being written to the layer; padding with zeros", name)
        _write_zeros(sink, st.st_size - written)
    sink.write(padding(st.st_size))


def _file_chunks(fd: int, size: int) -> Iterator[bytes]:
    """`size` bytes of the file, reading only its data extents (holes come out as zeros)."""
    pos = 0
    while pos < size:
        data_start = _next_data(fd, pos, size)
        if data_start > pos:
            yield from _zero_chunks(data_start - pos)
            pos = data_start
            continue
        try:
            hole = min(os.lseek(fd, pos, os.SEEK_HOLE), size)
        except OSError:
            hole = size
        while pos < hole:
            chunk = os.pread(fd, min(CHUNK, hole - pos), pos)
            if not chunk:
                return  # truncated under us; the caller pads
            pos += len(chunk)
            yield chunk


def _next_data(fd: int, pos: int, size: int) -> int:
    try:
        return min(os.lseek(fd, pos, os.SEEK_DATA), size)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # nothing but a hole from `pos` to the end
            return size
        return pos  # no SEEK_DATA on this filesystem: treat everything as data


def _zero_chunks(count: int) -> Iterator[bytes]:
    while count > 0:
        n = min(count, CHUNK)
        yield _ZEROS if n == CHUNK else bytes(n)
        count -= n


def _write_zeros(sink: TarSink, count: int) -> None:
    for chunk in _zero_chunks(count):
        sink.write(chunk)
