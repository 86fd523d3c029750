"""Applying a tar entry's metadata (owner, mode, xattrs, times) to what was just created.

Separate from extraction's path handling because its question is a different
one: what may this process apply? Ownership needs root (or a mapped id in a
user namespace); `trusted.*`/`security.*` xattrs need privileges too. What
cannot be applied is recorded or logged once, never fatal, as umoci does for
rootless unpacking.

Every call acts on the object extraction created, through a descriptor of
it, never through its name: a later entry (or layer) may have put a symlink
to a host file at that name (issue #10: a directory entry with mode 04777
followed by `d -> /etc/passwd` must not make the host file setuid).

Order matters: chown clears setuid/setgid bits and `security.capability`,
so ownership goes first, then mode, then xattrs, then times.
"""

from __future__ import annotations

import binascii
import errno
import fcntl
import logging
import os
import stat
import tarfile
from base64 import b64decode
from decimal import Decimal
from urllib.parse import unquote_to_bytes

from layers.fsmeta import IGNORED_XATTR_PREFIXES
from oci.errors import WharfieError

__all__ = ["MetadataRestorer", "descriptor_target", "entry_mtime_ns", "entry_xattrs"]

log = logging.getLogger(__name__)

_UNSUPPORTED = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP})
_DENIED = frozenset({errno.EPERM, errno.EACCES, errno.EINVAL})  # EINVAL: id not mapped in this user namespace
_MIN_NS, _MAX_NS = -(1 << 63), (1 << 63) - 1
_MAX_ID = (1 << 32) - 2  # uid_t; (uid_t)-1 means "leave unchanged" to chown


def entry_mtime_ns(member: tarfile.TarInfo) -> int:
    """The entry's mtime in ns, exact when a PAX record gives fractions (tarfile makes it a float).

    Clamped to what the kernel's 64-bit nanosecond times hold (years 1678 to 2262):
    a layer may say 1e999, nan or 2**63 seconds; that is not worth refusing it for.
    """
    text = member.pax_headers.get("mtime")
    try:
        ns = int(Decimal(text) * 1_000_000_000) if text is not None else int(member.mtime) * 1_000_000_000
    except (ArithmeticError, ValueError):  # nan, infinity, not a number
        ns = 0
    return min(max(ns, _MIN_NS), _MAX_NS)


def entry_xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    """xattrs from `SCHILY.xattr.*` (Go, GNU tar, us) and `LIBARCHIVE.xattr.*` (bsdtar) records."""
    out = []
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            out.append((key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape")))
        elif key.startswith("LIBARCHIVE.xattr."):
            name = unquote_to_bytes(key[len("LIBARCHIVE.xattr."):]).decode("utf-8", "surrogateescape")
            try:
                out.append((name, b64decode(value + "=" * (-len(value) % 4))))
            except binascii.Error:
                raise WharfieError(f"layer entry {member.name!r}: {key} is not base64") from None
    for name, _ in out:
        if "\x00" in name:  # a PAX keyword can hold one, no xattr name can
            raise WharfieError(f"layer entry {member.name!r}: NUL byte in the name of xattr {name!r}")
    return [(name, value) for name, value in out if not name.startswith(IGNORED_XATTR_PREFIXES)]


class MetadataRestorer:
    """Applies an entry's owner, mode, xattrs and times to the object extraction created.

    Objects are addressed by an open descriptor of the object itself (`apply`,
    `apply_dir_deferred`), never by a name that could have been replaced by a
    symlink since; a symlink, which cannot be opened for writing, by its name
    in its directory's descriptor with every call told not to follow it
    (`apply_symlink`). Either way nothing outside the root is ever reached.
    """

    def __init__(self, *, same_owner: bool, owners: dict[str, tuple[int, int]] | None,
                 owner: tuple[int, int] | None = None) -> None:
        self.same_owner = same_owner
        self.owners = owners
        self.owner = owner  # every entry's owner, whatever the archive says (ADD --chown)
        self._warned: set[str] = set()

    def apply(self, fd: int, rel: str, member: tarfile.TarInfo, *, times: bool = True, mode: bool = True) -> None:
        """Metadata of `member` onto the object open as `fd` (a plain or an `O_PATH` descriptor)."""
        target = descriptor_target(fd)
        self._chown(target, rel, member.uid, member.gid)
        if mode:
            os.chmod(target, stat.S_IMODE(member.mode))
        for name, value in entry_xattrs(member):
            self._setxattr(target, rel, name, value)
        if times:
            mtime_ns = entry_mtime_ns(member)
            os.utime(target, ns=(mtime_ns, mtime_ns))

    def apply_symlink(self, parent_fd: int, base: str, rel: str, member: tarfile.TarInfo) -> None:
        """Owner, xattrs and times of the symlink `base` itself (a symlink has no mode of its own)."""
        self._chown(base, rel, member.uid, member.gid, dir_fd=parent_fd)
        for name, value in entry_xattrs(member):
            self._setxattr(f"/proc/self/fd/{parent_fd}/{base}", rel, name, value, follow=False)
        mtime_ns = entry_mtime_ns(member)
        os.utime(base, ns=(mtime_ns, mtime_ns), dir_fd=parent_fd, follow_symlinks=False)

    def apply_dir_deferred(self, fd: int, mode: int | None, mtime_ns: int) -> None:
        """A directory's mode and times, once nothing more is written into it (atime = mtime)."""
        target = descriptor_target(fd)
        if mode is not None:
            os.chmod(target, mode)
        os.utime(target, ns=(mtime_ns, mtime_ns))

    def _chown(self, target: int | str, rel: str, uid: int, gid: int, *, dir_fd: int | None = None) -> None:
        uid, gid = self.owner or (uid, gid)
        if not (0 <= uid <= _MAX_ID and 0 <= gid <= _MAX_ID):
            raise WharfieError(f"layer entry {rel!r}: owner {uid}:{gid} out of range (0 to {_MAX_ID})")
        if self.same_owner:
            try:
                if dir_fd is None:
                    os.chown(target, uid, gid)
                else:
                    os.chown(target, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
                return
            except OSError as exc:
                if exc.errno not in _DENIED:
                    raise
                self._warn_once("chown", "cannot set ownership (%s), recording it instead: %s", exc.strerror, rel)
        if self.owners is not None:
            self.owners[rel] = (uid, gid)

    def _setxattr(self, target: int | str, rel: str, name: str, value: bytes, *, follow: bool = True) -> None:
        try:
            # `follow` only matters for a path: /proc/self/fd/N must be followed to reach the object,
            # a symlink's own path (apply_symlink) must not.
            os.setxattr(target, name, value, follow_symlinks=follow)
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


def descriptor_target(fd: int) -> int | str:
    """What `os.chmod`/`chown`/`utime`/`setxattr` take to act on exactly the object open as `fd`.

    A plain descriptor is used as is (fchmod, fchown, futimens, fsetxattr). Those
    calls refuse an `O_PATH` descriptor (EBADF), which is all we can hold on a device
    node or a directory we may not read; its `/proc/self/fd` entry is a link the
    kernel resolves to that same object, not a name anyone could replace (how glibc
    implements `fchmodat(AT_SYMLINK_NOFOLLOW)` too).
    """
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_PATH:
        return f"/proc/self/fd/{fd}"
    return fd
