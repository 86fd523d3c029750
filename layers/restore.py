"""Applying a tar entry's metadata (owner, mode, xattrs, times) to what was just created.

Separate from extraction's path handling because its question is a different
one: what may this process apply? Ownership needs root (or a mapped id in a
user namespace); `trusted.*`/`security.*` xattrs need privileges too. What
cannot be applied is recorded or logged once, never fatal, as umoci does for
rootless unpacking.

Order matters: chown clears setuid/setgid bits and `security.capability`,
so ownership goes first, then mode, then xattrs, then times.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from base64 import b64decode
from decimal import Decimal
from urllib.parse import unquote_to_bytes

from layers.fsmeta import IGNORED_XATTR_PREFIXES

__all__ = ["MetadataRestorer", "entry_mtime_ns", "entry_xattrs"]

log = logging.getLogger(__name__)

_UNSUPPORTED = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP})
_DENIED = frozenset({errno.EPERM, errno.EACCES, errno.EINVAL})  # EINVAL: id not mapped in this user namespace


def entry_mtime_ns(member: tarfile.TarInfo) -> int:
    """The entry's mtime in ns, exact when a PAX record gives fractions (tarfile makes it a float)."""
    text = member.pax_headers.get("mtime")
    if text is not None:
        try:
            return int(Decimal(text) * 1_000_000_000)
        except ArithmeticError:
            pass
    return int(member.mtime) * 1_000_000_000


def entry_xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    """xattrs from `SCHILY.xattr.*` (Go, GNU tar, us) and `LIBARCHIVE.xattr.*` (bsdtar) records."""
    out = []
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            out.append((key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape")))
        elif key.startswith("LIBARCHIVE.xattr."):
            name = unquote_to_bytes(key[len("LIBARCHIVE.xattr."):]).decode("utf-8", "surrogateescape")
            out.append((name, b64decode(value + "=" * (-len(value) % 4))))
    return [(name, value) for name, value in out if not name.startswith(IGNORED_XATTR_PREFIXES)]


class MetadataRestorer:
    """Applies owner, mode, xattrs and times to entries addressed as (parent dir fd, name)."""

    def __init__(self, *, same_owner: bool, owners: dict[str, tuple[int, int]] | None) -> None:
        self.same_owner = same_owner
        self.owners = owners
        self._warned: set[str] = set()

    def apply(self, parent_fd: int, base: str, rel: str, member: tarfile.TarInfo, *, times: bool = True,
              mode: bool = True) -> None:
        is_link = member.issym()
        self.chown(parent_fd, base, rel, member.uid, member.gid)
        if mode and not is_link:
            os.chmod(base, stat.S_IMODE(member.mode), dir_fd=parent_fd)
        for name, value in entry_xattrs(member):
            self._setxattr(parent_fd, base, rel, name, value)
        if times:
            set_times(parent_fd, base, entry_mtime_ns(member))

    def chown(self, parent_fd: int, base: str, rel: str, uid: int, gid: int) -> None:
        if self.same_owner:
            try:
                os.chown(base, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
                return
            except OSError as exc:
                if exc.errno not in _DENIED:
                    raise
                self._warn_once("chown", "cannot set ownership (%s), recording it instead: %s", exc.strerror, rel)
        if self.owners is not None:
            self.owners[rel] = (uid, gid)

    def _setxattr(self, parent_fd: int, base: str, rel: str, name: str, value: bytes) -> None:
        try:
            os.setxattr(f"/proc/self/fd/{parent_fd}/{base}", name, value, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in _UNSUPPORTED or exc.errno in _DENIED:
                self._warn_once(f"xattr:{name}", "cannot set xattr %s (%s), skipped: %s", name, exc.strerror, rel)
                return
            raise

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        # One warning per kind of failure: a rootless unpack would otherwise log once per file.
        if key in self._warned:
            log.debug(message, *args)
        else:
            self._warned.add(key)
            log.warning(message + " (further ones logged at debug level)", *args)


def set_times(parent_fd: int, base: str, mtime_ns: int) -> None:
    """atime = mtime: the layer has no atime worth keeping and equal inputs should give equal trees."""
    os.utime(base, ns=(mtime_ns, mtime_ns), dir_fd=parent_fd, follow_symlinks=False)
