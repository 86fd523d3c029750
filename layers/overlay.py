"""The overlay snapshotter: run a step on `lower=rootfs, upper=EMPTY` and read the change off `upper`.

With an overlay mount, the kernel records exactly what a step changed in the
upper directory, so a snapshot costs what the step changed, not the size of
the image. The upper dir speaks overlayfs's own dialect, translated here
into `Change`s:
- a 0,0 character device is a whiteout (a deletion). Its link count means
  nothing: the kernel may share one whiteout inode among all of them;
- a directory with `trusted.overlay.opaque` (real root) or
  `user.overlay.opaque` (user namespace, `userxattr` mount option) = "y" is
  opaque: it replaced the lower directory entirely.
The mount uses `redirect_dir=off` and `metacopy=off` (implied by `userxattr`)
so every changed file's content is in `upper`, where the writer reads it.

After the layer is written, `merge_upper` folds the (unmounted) upper dir
back into the lower one with renames, at the cost of the change again: the
one fold-back, used by the snapshotter and by sandboxed RUN steps alike.

Mounting goes through the `mount(2)` syscall via ctypes: no dependency on
mount(8), and errors come back as errno values we can report.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from layers.changes import Change, ChangeKind, inside_any, path_key
from layers.fsmeta import OVERLAY_XATTR_PREFIXES, read_xattrs
from layers.remove import remove_entry
from oci.errors import WharfieError

__all__ = [
    "OverlayError",
    "changes_from_upper",
    "in_user_namespace",
    "merge_upper",
    "mount_overlay",
    "overlay_supported",
    "unmount",
]

log = logging.getLogger(__name__)

_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# Present only when redirect_dir/metacopy were on: content would then live in a lower dir.
_NOT_SELF_CONTAINED = ("trusted.overlay.redirect", "user.overlay.redirect",
                       "trusted.overlay.metacopy", "user.overlay.metacopy")
_MNT_DETACH = 2
_UNSAFE_OPTION_CHARS = frozenset(",:\\")  # separators of overlay's option string


class OverlayError(WharfieError):
    """An overlay mount or upper dir that cannot be used."""


def changes_from_upper(upper: Path, lowers: Sequence[Path] = ()) -> list[Change]:
    """The changes recorded in an overlay upper dir, sorted; `lowers` only tell "add" from "modify"."""
    changes: list[Change] = []
    pending = [(os.fspath(upper), "", False)]
    while pending:
        directory, rel_dir, in_opaque = pending.pop()
        with os.scandir(directory) as scanner:
            for entry in scanner:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    changes.append(Change(rel, "delete"))
                    continue
                _refuse_lower_references(entry.path, rel)
                kind: ChangeKind = "add" if in_opaque or not _in_lowers(rel, lowers) else "modify"
                if stat.S_ISDIR(st.st_mode):
                    opaque = _is_opaque(entry.path)
                    if opaque:
                        kind = "opaque"
                    pending.append((entry.path, rel, in_opaque or opaque))
                changes.append(Change(rel, kind))
    changes.sort(key=lambda change: path_key(change.path))
    return changes


def _is_opaque(path: str) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return False


def _refuse_lower_references(path: str, rel: str) -> None:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return
    bad = [name for name in names if name in _NOT_SELF_CONTAINED]
    if bad:
        raise OverlayError(f"{rel}: upper dir entry depends on a lower layer ({', '.join(bad)}); "
                           "mount with redirect_dir=off,metacopy=off")


def _in_lowers(rel: str, lowers: Sequence[Path]) -> bool:
    return any(os.path.lexists(os.path.join(lower, rel)) for lower in lowers)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check_option_path(path: Path) -> str:
    text = os.fspath(Path(path).resolve())
    if _UNSAFE_OPTION_CHARS & set(text):
        raise OverlayError(f"overlay path {text!r} contains one of , : \\ which the mount options cannot carry")
    return text


def mount_overlay(lowers: Sequence[Path], upper: Path | None, work: Path | None, merged: Path, *,
                  userxattr: bool) -> None:
    """Mount an overlay at `merged`; `lowers` topmost first. `userxattr` inside a user namespace.

    Without `upper` (and `work`) the overlay is read-only: only its lower dirs, stacked.
    """
    if not lowers:
        raise OverlayError("an overlay needs at least one lower directory")
    options = ["lowerdir=" + ":".join(_check_option_path(lower) for lower in lowers)]
    if upper is not None and work is not None:
        options += ["upperdir=" + _check_option_path(upper), "workdir=" + _check_option_path(work)]
    # userxattr already implies these, and refuses some of them being named.
    options += ["userxattr"] if userxattr else ["redirect_dir=off", "metacopy=off", "index=off"]
    data = ",".join(options).encode()
    libc = _libc()
    if libc.mount(b"overlay", os.fsencode(_check_option_path(merged)), b"overlay", 0, data) != 0:
        code = ctypes.get_errno()
        raise OverlayError(f"overlay mount at {merged} failed: {os.strerror(code)} (options {data.decode()})")
    log.debug("mounted overlay at %s (%s)", merged, data.decode())


def unmount(merged: Path, *, lazy: bool = False) -> None:
    if _libc().umount2(os.fsencode(os.fspath(merged)), _MNT_DETACH if lazy else 0) != 0:
        code = ctypes.get_errno()
        raise OverlayError(f"unmounting {merged} failed: {os.strerror(code)}")


def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace other than the initial one."""
    try:
        with open("/proc/self/uid_map") as handle:
            fields = handle.read().split()
    except OSError:
        return False
    return fields[:3] != ["0", "0", "4294967295"]


def overlay_supported(base: Path | None = None, *, userxattr: bool | None = None, report: bool = True) -> bool:
    """Probe whether an overlay can be mounted here (under `base`) and records a deletion as expected.

    `report`: say why not (at info level) when it cannot.
    """
    say = log.info if report else log.debug
    if userxattr is None:
        userxattr = in_user_namespace()
    probe = Path(tempfile.mkdtemp(prefix="wharfie-overlay-probe-", dir=base))
    try:
        lower, upper, work, merged = (probe / name for name in ("lower", "upper", "work", "merged"))
        for directory in (lower, upper, work, merged):
            directory.mkdir()
        (lower / "gone").write_bytes(b"")
        try:
            mount_overlay([lower], upper, work, merged, userxattr=userxattr)
        except OverlayError as exc:
            say("overlay snapshots unavailable, falling back to the walk: %s", exc)
            return False
        try:
            (merged / "gone").unlink()
        finally:
            unmount(merged)
        return changes_from_upper(upper) == [Change("gone", "delete")]
    except OSError as exc:
        say("overlay probe failed, falling back to the walk: %s", exc)
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def merge_upper(upper: Path, lower: Path, changes: Sequence[Change]) -> None:
    """Move an unmounted upper dir's changes (`changes_from_upper`, ignored paths included) into `lower`.

    Renames on one filesystem: a new or opaque directory moves whole (its
    children need nothing more), a deletion removes the path, a directory on
    both sides only takes the new owner, mode and xattrs. Overlay's own
    xattrs (origin, opaque, impure, ...) are stripped from everything moved:
    they would mislead the next step's overlay. Directory times are set last,
    since moving children in changes them.
    """
    moved: set[str] = set()
    dir_times: list[tuple[str, int, int]] = []
    for change in changes:  # sorted: a parent comes before its children
        if inside_any(change.path, moved):
            continue
        source, target = os.path.join(upper, change.path), os.path.join(lower, change.path)
        if change.kind == "delete":
            remove_entry(target, missing_ok=True)
            continue
        source_st = os.lstat(source)
        if stat.S_ISDIR(source_st.st_mode):
            dir_times.append((target, source_st.st_atime_ns, source_st.st_mtime_ns))
            if change.kind != "opaque" and _is_dir(target):
                _copy_dir_metadata(source, target, source_st)
                continue
        if not (stat.S_ISREG(source_st.st_mode) or stat.S_ISLNK(source_st.st_mode)) or _is_dir(target):
            remove_entry(target, missing_ok=True)  # rename replaces files and symlinks atomically, not directories
        os.rename(source, target)
        _strip_overlay_xattrs(target)
        if stat.S_ISDIR(source_st.st_mode):
            moved.add(change.path)
    for target, atime_ns, mtime_ns in reversed(dir_times):
        os.utime(target, ns=(atime_ns, mtime_ns), follow_symlinks=False)


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _copy_dir_metadata(source: str, target: str, st: os.stat_result) -> None:
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        wanted = dict(read_xattrs(source))  # overlay's own and the host's SELinux label left out
        for name, _ in read_xattrs(target):
            if name not in wanted:
                os.removexattr(fd, name)
        for name, value in wanted.items():
            os.setxattr(fd, name, value)
    finally:
        os.close(fd)


def _strip_overlay_xattrs(top: str) -> None:
    paths = [top]
    if _is_dir(top):
        for dirpath, dirnames, filenames in os.walk(top):
            paths += [os.path.join(dirpath, name) for name in dirnames + filenames]
    for path in paths:
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            continue
        for name in names:
            if name.startswith(OVERLAY_XATTR_PREFIXES):
                os.removexattr(path, name, follow_symlinks=False)
