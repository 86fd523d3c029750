"""Driving one build step's snapshot: overlay when the kernel allows it, the walk otherwise.

    with snapshot_step(rootfs, ignore=("proc", "sys", "dev")) as snap:
        run_the_step(snap.workdir)          # the rootfs itself, or an overlay mounted over it
        changes = snap.finish()
        layer = write_layer(changes, snap.source_root, store)
    # here rootfs holds the step's result, whichever snapshotter ran

The overlay snapshotter mounts `lower=rootfs, upper=EMPTY` in a scratch dir
next to the rootfs, so reading the change costs what the step changed, not
the size of the image. On exit the upper dir is moved into the rootfs with
renames (same filesystem), again at the cost of the change. When an overlay
cannot be mounted (no privilege, no kernel support, scratch on another
filesystem) the walk snapshotter is used and the fallback is logged once.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from layers.changes import Change
from layers.fsmeta import OVERLAY_XATTR_PREFIXES, read_xattrs
from layers.overlay import (
    OverlayError,
    changes_from_upper,
    in_user_namespace,
    mount_overlay,
    overlay_supported,
    unmount,
)
from layers.walk import Snapshot, SnapshotMode, diff

__all__ = ["StepSnapshot", "merge_upper", "snapshot_step"]

log = logging.getLogger(__name__)

Preference = Literal["auto", "overlay", "walk"]
_probe_results: dict[str, bool] = {}  # scratch dir -> can mount an overlay there
_reported: set[str] = set()  # fallback reasons already logged


class StepSnapshot:
    """One step's snapshot: run the step in `workdir`, then `finish()`; read contents from `source_root`."""

    kind: str = "walk"

    def __init__(self, rootfs: Path, ignore: tuple[str, ...], mode: SnapshotMode) -> None:
        self.rootfs = self.workdir = self.source_root = rootfs
        self._ignore = ignore
        self._mode: SnapshotMode = mode
        self._before = Snapshot.take(rootfs, ignore, mode=mode)
        self._changes: list[Change] | None = None

    def finish(self) -> list[Change]:
        """Stop recording; the changes the step made (ignored paths left out)."""
        if self._changes is None:
            self._changes = diff(self._before, Snapshot.take(self.rootfs, self._ignore, mode=self._mode))
        return self._changes

    def close(self) -> None:
        """Leave the rootfs holding the step's result (nothing to do for the walk)."""


class _OverlayStep(StepSnapshot):
    kind = "overlay"

    def __init__(self, rootfs: Path, ignore: tuple[str, ...], scratch: Path, userxattr: bool) -> None:
        self.rootfs = rootfs
        self._ignore = ignore
        self._changes = None
        self._dir = Path(tempfile.mkdtemp(prefix="wharfie-step-", dir=scratch))
        self._upper, work, self.workdir = self._dir / "upper", self._dir / "work", self._dir / "merged"
        for directory in (self._upper, work, self.workdir):
            directory.mkdir()
        self.source_root = self._upper
        self._all_changes: list[Change] = []
        try:
            mount_overlay([rootfs], self._upper, work, self.workdir, userxattr=userxattr)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._mounted = True

    def finish(self) -> list[Change]:
        if self._changes is None:
            self._unmount()
            self._all_changes = changes_from_upper(self._upper, [self.rootfs])
            self._changes = [c for c in self._all_changes if not _ignored(c.path, self._ignore)]
        return self._changes

    def close(self) -> None:
        try:
            self.finish()
            merge_upper(self._upper, self.rootfs, self._all_changes)
        finally:
            self._unmount()
            shutil.rmtree(self._dir, ignore_errors=True)

    def _unmount(self) -> None:
        if self._mounted:
            unmount(self.workdir)
            self._mounted = False


def _ignored(path: str, ignore: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in ignore)


@contextmanager
def snapshot_step(rootfs: Path, *, ignore: Iterable[str] = (), scratch: Path | None = None,
                  prefer: Preference = "auto", mode: SnapshotMode = "metadata") -> Iterator[StepSnapshot]:
    """Snapshot one step on `rootfs`; see the module docstring.

    `scratch` must be on the rootfs's filesystem (default: its parent dir).
    `mode="full"` (content hashing) only applies to the walk.
    """
    rootfs = Path(rootfs)
    ignored = tuple(p.strip("/") for p in ignore)
    scratch = Path(scratch) if scratch is not None else rootfs.parent
    step = _open_step(rootfs, ignored, scratch, prefer, mode)
    log.debug("snapshotting %s with the %s snapshotter", rootfs, step.kind)
    try:
        yield step
    finally:
        step.close()


def _open_step(rootfs: Path, ignore: tuple[str, ...], scratch: Path, prefer: Preference,
               mode: SnapshotMode) -> StepSnapshot:
    if prefer != "walk" and mode == "metadata":
        reason = _overlay_unusable(rootfs, scratch)
        if reason is None:
            try:
                return _OverlayStep(rootfs, ignore, scratch, in_user_namespace())
            except OverlayError as exc:
                reason = str(exc)
        if prefer == "overlay":
            raise OverlayError(f"overlay snapshots requested but unavailable: {reason}")
        if reason not in _reported:
            _reported.add(reason)
            log.info("overlay snapshotter unavailable (%s); using the walk snapshotter", reason)
    return StepSnapshot(rootfs, ignore, mode)


def _overlay_unusable(rootfs: Path, scratch: Path) -> str | None:
    if os.stat(rootfs).st_dev != os.stat(scratch).st_dev:
        return f"scratch dir {scratch} is not on the filesystem of {rootfs}"
    key = os.fspath(scratch)
    if key not in _probe_results:
        _probe_results[key] = overlay_supported(scratch)
    return None if _probe_results[key] else "no overlay mount permitted here"


def merge_upper(upper: Path, rootfs: Path, changes: list[Change]) -> None:
    """Move an (unmounted) overlay upper dir's changes into `rootfs`, by renames.

    Parents come before children in `changes`; a directory new to the rootfs
    (or opaque) moves whole, so its children need nothing more.
    """
    moved: list[str] = []
    dir_times: list[tuple[Path, int, int]] = []  # set last: moving children in bumps a directory's mtime
    for change in changes:
        if any(change.path.startswith(prefix + "/") for prefix in moved):
            continue
        source, target = upper / change.path, rootfs / change.path
        if change.kind == "delete":
            _remove(target)
            continue
        source_st = os.lstat(source)
        if stat.S_ISDIR(source_st.st_mode):
            dir_times.append((target, source_st.st_atime_ns, source_st.st_mtime_ns))
            if change.kind != "opaque" and _is_dir(target):
                _copy_dir_metadata(source, target, source_st)
                continue
        if not (stat.S_ISREG(source_st.st_mode) or stat.S_ISLNK(source_st.st_mode)) or _is_dir(target):
            _remove(target)  # rename replaces files and symlinks atomically, but not directories
        os.rename(source, target)
        _strip_overlay_xattrs(target)
        if stat.S_ISDIR(source_st.st_mode):
            moved.append(change.path)
    for target, atime_ns, mtime_ns in reversed(dir_times):
        os.utime(target, ns=(atime_ns, mtime_ns))


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _remove(path: Path) -> None:
    if _is_dir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _copy_dir_metadata(source: Path, target: Path, st: os.stat_result) -> None:
    os.chown(target, st.st_uid, st.st_gid)
    os.chmod(target, stat.S_IMODE(st.st_mode))
    wanted = dict(read_xattrs(source))
    for name, _ in read_xattrs(target):
        if name not in wanted:
            os.removexattr(target, name)
    for name, value in wanted.items():
        os.setxattr(target, name, value)


def _strip_overlay_xattrs(top: Path) -> None:
    """Overlay's bookkeeping (origin, opaque, ...) must not follow the files into the rootfs."""
    paths = [os.fspath(top)]
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
