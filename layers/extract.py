"""Apply one layer tar onto a root filesystem directory, safely.

The layer is read as a stream (`tarfile` in "r|" mode, members forgotten as
soon as they are applied), so memory does not grow with the layer's bytes;
only the set of paths this layer created is kept, which opaque whiteouts
need (the same bookkeeping umoci and containerd do).

Semantics are the OCI image-spec's and docker's:
- `DIR/.wh.NAME` removes NAME of lower layers; `DIR/.wh..wh..opq` removes
  everything in DIR that lower layers put there, but keeps what this layer
  adds, whichever order the entries come in;
- an entry replaces whatever is at its path unless both are directories;
- names are resolved by `securepath.RootDir`: never outside the root.
Directory modes and times are applied at the end, since writing children
changes a directory's mtime and a read-only directory would refuse them.
"""

from __future__ import annotations

import logging
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, BinaryIO, Self

from layers.compress import open_decompressed
from layers.remove import remove_entry
from layers.restore import MetadataRestorer, entry_mtime_ns, set_times
from layers.securepath import RootDir, clean_entry_name
from layers.tarheaders import OPAQUE_MARKER, WHITEOUT_PREFIX
from oci.digest import CHUNK
from oci.errors import UnsafePathError, WharfieError

__all__ = ["extract_layer"]

log = logging.getLogger(__name__)

_ZEROS = bytes(CHUNK)
_HOLE_MIN = 4096  # zero runs shorter than a block are written, not skipped
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_METADATA_RECORD = 1 << 20  # Go's archive/tar limit too: no sane name or xattr set comes near it
_METADATA_TYPES = frozenset({tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                             tarfile.GNUTYPE_LONGLINK})


def extract_layer(
    blob: BinaryIO,
    root: Path,
    *,
    compression: str = "auto",
    same_owner: bool | None = None,
    owners: dict[str, tuple[int, int]] | None = None,
    whiteouts: bool = True,
    select: Callable[[str], bool] | None = None,
) -> None:
    """Apply the layer in `blob` (compressed or not) onto the directory `root` (created if missing).

    `same_owner`: apply the entries' uid/gid (default: when running as root).
    Ownership that is not applied is recorded in `owners` (relative path ->
    (uid, gid)) when a dict is given. `whiteouts=False` unpacks a plain archive
    (ADD): `.wh.*` names are ordinary files there. `select`, given an entry's
    relative path, says whether to extract it at all (a partial tree for a
    `COPY --from`). Raises `UnsafePathError` for entries that try to leave
    the root, `WharfieError` for a corrupt layer.
    """
    if same_owner is None:
        same_owner = os.geteuid() == 0
    Path(root).mkdir(parents=True, exist_ok=True)
    restorer = MetadataRestorer(same_owner=same_owner, owners=owners)
    with open_decompressed(blob, compression) as stream, _Extractor(root, restorer, whiteouts) as extractor:
        try:
            for member, tar in _members(stream):
                if select is not None and not select("/".join(clean_entry_name(member.name))):
                    continue
                try:
                    extractor.apply(member, tar)
                except OSError as exc:
                    raise WharfieError(f"cannot apply layer entry {member.name!r}: {exc}") from exc
        except (tarfile.TarError, EOFError) as exc:  # raised while reading an entry's data
            raise WharfieError(f"corrupt layer: {exc}") from None
        extractor.finish()


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses oversized metadata records: tarfile reads a PAX or GNU long-name record whole."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _METADATA_TYPES and self.size > MAX_METADATA_RECORD:
            raise WharfieError(f"corrupt layer: a {self.size}-byte header record (limit {MAX_METADATA_RECORD})")
        return super()._proc_member(tar)  # type: ignore[misc, no-any-return]


def _members(stream: BinaryIO) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    try:
        with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape",
                          tarinfo=_BoundedTarInfo) as tar:
            while (member := tar.next()) is not None:
                yield member, tar
                # tarfile keeps every member it has read; forget them, or memory grows with the layer.
                tar.members.clear()  # type: ignore[attr-defined]
    except (tarfile.TarError, EOFError) as exc:
        raise WharfieError(f"corrupt layer: {exc}") from None


class _Extractor:
    def __init__(self, root: Path, restorer: MetadataRestorer, whiteouts: bool = True) -> None:
        self._root = RootDir(root)
        self._whiteouts = whiteouts
        self._restorer = restorer
        self._upper: set[str] = set()  # resolved paths this layer created, and their ancestors
        self._dir_meta: dict[str, tuple[int | None, int]] = {}  # dir -> (mode or None, mtime_ns), applied last

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._root.close()

    def apply(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        parts = clean_entry_name(member.name)
        if not parts:
            if not member.isdir():
                raise UnsafePathError(f"layer entry {member.name!r}: refusing to change the type of the root")
            return
        base = parts[-1]
        if self._whiteouts and base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, member.name)
            return
        if not _supported(member):
            log.warning("skipping layer entry %r of unsupported type %r", member.name, member.type)
            return
        parent_fd, parent = self._root.parent(parts, create=True, name=member.name)
        rel = "/".join((*parent, base))
        self._remember_parent_times(parent_fd, parent)
        self._clear_for(parent_fd, base, member)
        if member.isdir():
            self._make_dir(parent_fd, base, rel, member)
        elif member.isreg():
            self._make_file(parent_fd, base, rel, member, tar)
        elif member.issym():
            os.symlink(member.linkname, base, dir_fd=parent_fd)
            self._restorer.apply(parent_fd, base, rel, member)
        elif member.islnk():
            self._make_hardlink(parent_fd, base, member)
        elif not self._make_node(parent_fd, base, rel, member):
            return
        self._mark_upper(rel)

    def finish(self) -> None:
        """Apply directory modes and mtimes, now that nothing will be written into them."""
        self._root.invalidate()
        # Deepest first: a parent made read-only must not block reaching its children.
        for rel in sorted(self._dir_meta, key=lambda path: path.count("/") if path else -1, reverse=True):
            mode, mtime_ns = self._dir_meta[rel]
            parts = rel.split("/") if rel else []
            try:
                fd, _ = self._root.resolve_dir(parts[:-1], create=False, name=rel)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed by a later whiteout in this layer
            try:
                base = parts[-1] if parts else "."
                if mode is not None:
                    os.chmod(base, mode, dir_fd=fd)
                set_times(fd, base, mtime_ns)
            except FileNotFoundError:
                pass
            finally:
                if fd != self._root.fd:
                    os.close(fd)

    # -- entry kinds -------------------------------------------------------------------------

    def _make_dir(self, parent_fd: int, base: str, rel: str, member: tarfile.TarInfo) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=parent_fd)  # owner-writable until finish() sets the real mode
        except FileExistsError:
            pass
        self._restorer.apply(parent_fd, base, rel, member, times=False, mode=False)
        self._dir_meta[rel] = (stat.S_IMODE(member.mode), entry_mtime_ns(member))

    def _make_file(self, parent_fd: int, base: str, rel: str, member: tarfile.TarInfo,
                   tar: tarfile.TarFile) -> None:
        fd = os.open(base, _NEW_FILE, 0o600, dir_fd=parent_fd)
        try:
            source = tar.extractfile(member)
            if source is not None:
                _copy_sparse(source, fd, member.size)
        finally:
            os.close(fd)
        self._restorer.apply(parent_fd, base, rel, member)

    def _make_hardlink(self, parent_fd: int, base: str, member: tarfile.TarInfo) -> None:
        target = clean_entry_name(member.linkname, what=f"hard link target of {member.name!r}")
        if not target:
            raise UnsafePathError(f"layer entry {member.name!r}: hard link to the root refused")
        try:
            target_fd, _ = self._root.resolve_dir(target[:-1], create=False, name=member.linkname)
        except (FileNotFoundError, NotADirectoryError):
            raise WharfieError(f"layer entry {member.name!r}: hard link target {member.linkname!r} does not exist")
        try:
            st = os.stat(target[-1], dir_fd=target_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise UnsafePathError(f"layer entry {member.name!r}: hard link to directory {member.linkname!r}")
            os.link(target[-1], base, src_dir_fd=target_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise WharfieError(f"layer entry {member.name!r}: hard link target {member.linkname!r} does not exist")
        finally:
            if target_fd != self._root.fd:
                os.close(target_fd)

    def _make_node(self, parent_fd: int, base: str, rel: str, member: tarfile.TarInfo) -> bool:
        kind = stat.S_IFIFO if member.isfifo() else stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        device = 0 if member.isfifo() else os.makedev(member.devmajor, member.devminor)
        try:
            os.mknod(base, kind | 0o600, device, dir_fd=parent_fd)
        except PermissionError:
            log.warning("skipping device node %r: not permitted to create it here", member.name)
            return False
        self._restorer.apply(parent_fd, base, rel, member)
        return True

    # -- whiteouts ---------------------------------------------------------------------------

    def _whiteout(self, parts: list[str], name: str) -> None:
        base = parts[-1]
        if base != OPAQUE_MARKER and base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            log.debug("ignoring aufs metadata entry %r", name)
            return
        target = base[len(WHITEOUT_PREFIX):]
        if base != OPAQUE_MARKER and target in ("", ".", ".."):
            raise UnsafePathError(f"layer entry {name!r}: whiteout names no file")
        try:
            parent_fd, parent = self._root.parent(parts, create=False, name=name)
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing there to delete
        self._remember_parent_times(parent_fd, parent)
        if base == OPAQUE_MARKER:
            self._prune_children(parent_fd, ".", "/".join(parent))
        else:
            self._prune(parent_fd, target, "/".join((*parent, target)))
        self._root.invalidate()

    def _prune(self, parent_fd: int, base: str, rel: str) -> None:
        """Remove `base` unless this layer created it; if it did, remove what lower layers left inside."""
        try:
            st = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if rel not in self._upper:
            remove_entry(base, dir_fd=parent_fd)
        elif stat.S_ISDIR(st.st_mode):
            self._prune_children(parent_fd, base, rel)

    def _prune_children(self, parent_fd: int, base: str, rel: str) -> None:
        fd = os.open(base, _OPEN_DIR, dir_fd=parent_fd)
        try:
            for child in os.listdir(fd):
                self._prune(fd, child, f"{rel}/{child}" if rel else child)
        finally:
            os.close(fd)

    # -- bookkeeping -------------------------------------------------------------------------

    def _clear_for(self, parent_fd: int, base: str, member: tarfile.TarInfo) -> bool:
        """Remove what is at `base` unless both it and the entry are directories; True if kept."""
        try:
            st = os.stat(base, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode) and member.isdir():
            return True
        remove_entry(base, dir_fd=parent_fd)
        return False

    def _remember_parent_times(self, parent_fd: int, parent: tuple[str, ...]) -> None:
        # Creating or removing an entry bumps its directory's mtime; a directory the layer
        # does not list must keep the time it had.
        rel = "/".join(parent)
        if rel not in self._dir_meta:
            self._dir_meta[rel] = (None, os.stat(parent_fd).st_mtime_ns)

    def _mark_upper(self, rel: str) -> None:
        while rel and rel not in self._upper:
            self._upper.add(rel)
            rel = rel.rpartition("/")[0]


def _supported(member: tarfile.TarInfo) -> bool:
    return member.isdir() or member.isreg() or member.issym() or member.islnk() or member.isdev()


def _copy_sparse(source: IO[bytes], fd: int, size: int) -> None:
    """Copy an entry's data, leaving holes where whole blocks are zero (sparse files stay sparse)."""
    offset = 0
    while chunk := source.read(CHUNK):
        if len(chunk) >= _HOLE_MIN and _is_zero(chunk):
            offset += len(chunk)
            continue
        _write_all(fd, chunk, offset)
        offset += len(chunk)
    if offset != size:
        raise WharfieError(f"layer entry data ended after {offset} of {size} bytes")
    os.ftruncate(fd, size)  # a trailing hole still has to count in the size


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _is_zero(chunk: bytes) -> bool:
    if chunk[0] or chunk[-1]:
        return False
    return chunk == _ZEROS if len(chunk) == CHUNK else chunk.count(0) == len(chunk)
