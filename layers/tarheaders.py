"""PAX tar headers for layer entries, built from `lstat` results.

The standard library's `tarfile.TarInfo.tobuf` does the encoding (PAX records
for long names, large sizes and ids, non-UTF-8 names and binary xattr values);
this module decides *what* goes in, so that equal trees give equal bytes: no
owner names, whole-second mtimes (clamped to SOURCE_DATE_EPOCH when given), no
atime/ctime, xattrs as sorted `SCHILY.xattr.*` records.
"""

from __future__ import annotations

import os
import stat
import tarfile
from typing import Protocol

__all__ = [
    "BLOCK",
    "END_OF_ARCHIVE",
    "OPAQUE_MARKER",
    "WHITEOUT_PREFIX",
    "entry_header",
    "padding",
    "whiteout_header",
]

BLOCK = 512
END_OF_ARCHIVE = bytes(2 * BLOCK)  # what Go's archive/tar writes; the empty tar is exactly this
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"  # file names are bytes on Linux; keep them byte-exact

_TYPES = {
    stat.S_IFREG: tarfile.REGTYPE,
    stat.S_IFDIR: tarfile.DIRTYPE,
    stat.S_IFLNK: tarfile.SYMTYPE,
    stat.S_IFCHR: tarfile.CHRTYPE,
    stat.S_IFBLK: tarfile.BLKTYPE,
    stat.S_IFIFO: tarfile.FIFOTYPE,
}


def tar_type(st_mode: int) -> bytes | None:
    """The tar type flag for a file mode; None for sockets, which a tar cannot hold."""
    return _TYPES.get(stat.S_IFMT(st_mode))


class StatLike(Protocol):
    """What a header needs of a file's status: an `os.stat_result`, or an entry described without a file."""

    @property
    def st_mode(self) -> int: ...
    @property
    def st_uid(self) -> int: ...
    @property
    def st_gid(self) -> int: ...
    @property
    def st_mtime(self) -> float: ...
    @property
    def st_size(self) -> int: ...
    @property
    def st_rdev(self) -> int: ...


def entry_header(
    name: str,
    st: StatLike,
    *,
    link_target: str | None = None,
    hardlink_to: str | None = None,
    xattrs: tuple[tuple[str, bytes], ...] = (),
    epoch: int | None = None,
) -> bytes:
    """The header block(s) for one filesystem entry; the caller writes the content after it."""
    kind = tar_type(st.st_mode)
    if kind is None:
        raise ValueError(f"{name}: sockets cannot be stored in a tar")
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = _clamp(int(st.st_mtime), epoch)
    if hardlink_to is not None:
        info.type, info.linkname, info.size = tarfile.LNKTYPE, hardlink_to, 0
    else:
        info.type = kind
        info.size = st.st_size if kind == tarfile.REGTYPE else 0
        if kind == tarfile.SYMTYPE:
            info.linkname = link_target or ""
        elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    if xattrs:
        info.pax_headers = {"SCHILY.xattr." + key: value.decode(_ENCODING, _ERRORS) for key, value in xattrs}
    return info.tobuf(tarfile.PAX_FORMAT, _ENCODING, _ERRORS)


def whiteout_header(name: str) -> bytes:
    """An empty regular file marking a deletion (`.wh.NAME`) or an opaque dir (`.wh..wh..opq`).

    Mode, owner and mtime are zero like docker's, so whiteouts never depend
    on the clock or the tree.
    """
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uname, info.gname = 0, 0, "", ""
    return info.tobuf(tarfile.PAX_FORMAT, _ENCODING, _ERRORS)


def padding(size: int) -> bytes:
    remainder = size % BLOCK
    return bytes(BLOCK - remainder) if remainder else b""


def _clamp(mtime: int, epoch: int | None) -> int:
    mtime = max(mtime, 0)  # pre-1970 mtimes are rare and not worth a PAX record
    return mtime if epoch is None else min(mtime, epoch)
