"""Apply one layer tar onto a root filesystem directory, safely.

The layer is read as a stream (`tarstream`: tarfile in "r|" mode, members
forgotten as soon as they are applied, every header within `TarLimits`), so
memory does not grow with the layer's bytes; only the set of paths this
layer created is kept, which opaque whiteouts need (the same bookkeeping
umoci and containerd do).

Semantics are the OCI image-spec's and docker's:
- `DIR/.wh.NAME` removes NAME of lower layers; `DIR/.wh..wh..opq` removes
  everything in DIR that lower layers put there, but keeps what this layer
  adds, whichever order the entries come in;
- an entry replaces whatever is at its path unless both are directories;
- names are resolved by `securepath.RootDir`: never outside the root.
Directory modes and times are applied at the end, since writing children
changes a directory's mtime and a read-only directory would refuse them.
Metadata always goes to the object that was created, by descriptor
(`restore`): a deferred directory is remembered by (st_dev, st_ino) and
found again by `RootDir.open_exact`, which follows no symlink. If a later
entry replaced it (a symlink to a host file, a plain file, a hard link),
its pending mode and times are dropped, not an error: the directory is no
longer part of the tree, and "an entry replaces whatever is at its path"
is how docker applies layers too.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Self

from layers.compress import open_decompressed
from layers.remove import remove_entry
from layers.restore import MetadataRestorer, entry_mtime_ns
from layers.securepath import RootDir, clean_entry_name
from layers.tarheaders import OPAQUE_MARKER, WHITEOUT_PREFIX
from layers.tarstream import DEFAULT_LIMITS, TarLimits, read_entries, shown_name, write_entry_data
from oci.errors import UnsafePathError, WharfieError

__all__ = ["TarLimits", "extract_layer"]

log = logging.getLogger(__name__)

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIR_PATH = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_NODE = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC  # never open a device for real
_GONE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})  # O_NOFOLLOW|O_DIRECTORY on a replaced name


def extract_layer(
    blob: BinaryIO,
    root: Path,
    *,
    compression: str = "auto",
    same_owner: bool | None = None,
    owners: dict[str, tuple[int, int]] | None = None,
    owner: tuple[int, int] | None = None,
    whiteouts: bool = True,
    select: Callable[[str], bool] | None = None,
    label: str = "",
    limits: TarLimits = DEFAULT_LIMITS,
) -> None:
    """Apply the layer in `blob` (compressed or not) onto the directory `root` (created if missing).

    `same_owner`: apply the entries' uid/gid (default: when running as root).
    Ownership that is not applied is recorded in `owners` (relative path ->
    (uid, gid)) when a dict is given. `owner` (uid, gid) replaces every
    entry's own (ADD --chown), applied or recorded the same way.
    `whiteouts=False` unpacks a plain archive (ADD): `.wh.*` names are
    ordinary files there. `select`, given an entry's relative path, says
    whether to extract it at all (a partial tree for a `COPY --from`).
    Raises `UnsafePathError` for entries that try to leave the root,
    `WharfieError` for a corrupt layer or one over `limits`; `label` (say,
    the layer's digest) starts their message.
    """
    if same_owner is None:
        same_owner = os.geteuid() == 0
    restorer = MetadataRestorer(same_owner=same_owner, owners=owners, owner=owner)
    try:
        _extract(blob, root, compression, restorer, whiteouts, select, limits)
    except WharfieError as exc:
        if label:
            exc.args = (f"{label}: {exc}",)  # the same error, type kept, naming the layer at fault
        raise


def _extract(blob: BinaryIO, root: Path, compression: str, restorer: MetadataRestorer, whiteouts: bool,
             select: Callable[[str], bool] | None, limits: TarLimits) -> None:
    Path(root).mkdir(parents=True, exist_ok=True)
    with open_decompressed(blob, compression) as stream, \
            _Extractor(root, restorer, whiteouts, limits.depth) as extractor:
        for member, tar in read_entries(stream, limits):
            if select is not None and not select("/".join(clean_entry_name(member.name))):
                continue
            try:
                extractor.apply(member, tar)
            except OSError as exc:
                raise WharfieError(f"cannot apply layer entry {shown_name(member.name)}: {exc}") from exc
        try:
            extractor.finish()
        except OSError as exc:
            raise WharfieError(f"cannot apply the layer's directory modes and times: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _PendingDir:
    """A directory's mode and mtime to apply at the end, and which directory it was."""

    dev: int
    ino: int
    mode: int | None  # None: a directory the layer does not list, only its mtime is kept
    mtime_ns: int

    def is_(self, st: os.stat_result) -> bool:
        return (st.st_dev, st.st_ino) == (self.dev, self.ino)


class _Extractor:
    def __init__(self, root: Path, restorer: MetadataRestorer, whiteouts: bool, max_depth: int) -> None:
        self._root = RootDir(root, max_depth=max_depth)  # symlinks can land an entry deeper than its name
        self._whiteouts = whiteouts
        self._restorer = restorer
        self._upper: set[str] = set()  # resolved paths this layer created, and their ancestors
        # Directories of this layer already emptied of lower content: nothing lower can come back
        # into them, so a second opaque marker or whiteout there has nothing to do. Without this a
        # layer of N files and N opaque markers costs N*N.
        self._clean: set[str] = set()
        self._dir_meta: dict[str, _PendingDir] = {}  # resolved dir path -> what finish() applies

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
            self._restorer.apply_symlink(parent_fd, base, rel, member)
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
            pending = self._dir_meta[rel]
            parts = rel.split("/") if rel else []
            fd = self._reopen_dir(parts)
            if fd is None:
                continue
            try:
                if pending.is_(os.fstat(fd)):
                    self._restorer.apply_dir_deferred(fd, pending.mode, pending.mtime_ns)
                else:
                    log.debug("layer entry %r was replaced: its directory metadata is not applied", rel)
            finally:
                os.close(fd)

    def _reopen_dir(self, parts: list[str]) -> int | None:
        """The directory now at exactly `parts` (no symlink followed), or None if there is none."""
        parent_fd = self._root.open_exact(parts[:-1])
        if parent_fd is None:
            return None
        try:
            return _open_dir(parent_fd, parts[-1] if parts else ".")
        except OSError as exc:
            if exc.errno in _GONE:
                return None
            raise
        finally:
            if parent_fd != self._root.fd:
                os.close(parent_fd)

    # -- entry kinds -------------------------------------------------------------------------

    def _make_dir(self, parent_fd: int, base: str, rel: str, member: tarfile.TarInfo) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=parent_fd)  # owner-writable until finish() sets the real mode
        except FileExistsError:
            pass
        fd = _open_dir(parent_fd, base)
        try:
            st = os.fstat(fd)
            self._restorer.apply(fd, rel, member, times=False, mode=False)
        finally:
            os.close(fd)
        self._dir_meta[rel] = _PendingDir(st.st_dev, st.st_ino, stat.S_IMODE(member.mode), entry_mtime_ns(member))

    def _make_file(self, parent_fd: int, base: str, rel: str, member: tarfile.TarInfo,
                   tar: tarfile.TarFile) -> None:
        fd = os.open(base, _NEW_FILE, 0o600, dir_fd=parent_fd)
        try:
            write_entry_data(tar, member, fd)
            self._restorer.apply(fd, rel, member)
        finally:
            os.close(fd)

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
        if member.isfifo():
            device = 0
        elif 0 <= member.devmajor < 1 << 32 and 0 <= member.devminor < 1 << 32:
            device = os.makedev(member.devmajor, member.devminor)
        else:
            raise WharfieError(f"layer entry {shown_name(member.name)}: device number "
                               f"{member.devmajor},{member.devminor} out of range")
        try:
            os.mknod(base, kind | 0o600, device, dir_fd=parent_fd)
        except PermissionError:
            log.warning("skipping device node %r: not permitted to create it here", member.name)
            return False
        fd = os.open(base, _OPEN_NODE, dir_fd=parent_fd)
        try:
            if stat.S_IFMT(os.fstat(fd).st_mode) != kind:
                raise WharfieError(f"layer entry {member.name!r}: replaced while being created")
            self._restorer.apply(fd, rel, member)
        finally:
            os.close(fd)
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
        if rel in self._clean:
            return
        fd = os.open(base, _OPEN_DIR, dir_fd=parent_fd)
        try:
            for child in os.listdir(fd):
                self._prune(fd, child, f"{rel}/{child}" if rel else child)
        finally:
            os.close(fd)
        self._clean.add(rel)

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
        st = os.fstat(parent_fd)
        pending = self._dir_meta.get(rel)
        if pending is None or not pending.is_(st):
            self._dir_meta[rel] = _PendingDir(st.st_dev, st.st_ino, None, st.st_mtime_ns)

    def _mark_upper(self, rel: str) -> None:
        while rel and rel not in self._upper:
            self._upper.add(rel)
            rel = rel.rpartition("/")[0]


def _open_dir(parent_fd: int, base: str) -> int:
    """A descriptor of the directory `base` itself (O_NOFOLLOW: a symlink there fails, ELOOP/ENOTDIR).

    Read-only when we may read it, else `O_PATH` (a directory of a lower layer
    whose mode lacks u+r, met when not root); `restore` handles both.
    """
    try:
        return os.open(base, _OPEN_DIR, dir_fd=parent_fd)
    except PermissionError:
        return os.open(base, _OPEN_DIR_PATH, dir_fd=parent_fd)


def _supported(member: tarfile.TarInfo) -> bool:
    return member.isdir() or member.isreg() or member.issym() or member.islnk() or member.isdev()


