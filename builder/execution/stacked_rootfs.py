"""A stage's filesystem as an overlay: read-only layer directories below, the stage's own changes above.

Instead of extracting its base into a fresh directory, a stage mounts the
unpacked layers of its base (builder/image/unpacked_store.py) as overlay
lower dirs, with an upper dir of its own that takes every write: starting a
stage costs a mount, not an extraction, and the shared layer directories are
never written (the kernel copies a file up before changing it). COPY, ADD,
WORKDIR and the walk snapshotter work on the mounted tree as on any
directory.

A RUN step's own overlay has the mounted stage as its lower dir; its
changes are then folded into the stage's upper dir by renames (`fold`),
with the stage unmounted meanwhile (overlayfs does not allow its upper dir
to change under a mounted overlay) and mounted again afterwards. The fold
keeps overlay's format: a deletion stays a whiteout, an opaque directory
stays opaque, and a directory that replaces a whiteout is made opaque, so
the layers below cannot show through it.

A finished stage is remounted read-only with its upper dir as the top lower
dir (`freeze`): a later stage built FROM it stacks on the same directories.
The mounts live in the build's own mount namespace (the CLI makes one), so
they end with the process whatever happens to it.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from layers.changes import Change, inside_any
from layers.overlay import OverlayError, mount_overlay, unmount

__all__ = ["MAX_LOWER_OPTION", "StackedRootfs", "fold_into_upper"]

log = logging.getLogger(__name__)

# mount(2) takes the options in one page; leave room for upperdir, workdir and the flags.
MAX_LOWER_OPTION = 3000


class StackedRootfs:
    """The overlay at `merged`: `lowers` (topmost first) under `upper`, or under nothing once frozen."""

    def __init__(self, merged: Path, lowers: Sequence[Path], *, userxattr: bool) -> None:
        self.merged = merged
        self.upper = merged.with_name(merged.name + ".upper")
        self.work = merged.with_name(merged.name + ".work")
        self.lowers = list(lowers)
        self.userxattr = userxattr
        self.mounted = False
        self.frozen = False

    @staticmethod
    def fits(lowers: Sequence[Path]) -> bool:
        """Whether this many lower dirs fit in one mount's options (else: extract as before)."""
        return 0 < sum(len(os.fspath(p)) + 1 for p in lowers) + 64 < MAX_LOWER_OPTION

    @staticmethod
    def stacking_works(store_root: Path, work_root: Path, *, userxattr: bool) -> bool:
        """Whether a RUN's overlay can sit on a stage overlay whose lowers are under `store_root`.

        The kernel stacks overlays two deep at most: where the store is itself on an overlay (a job
        container's own root), the RUN's would be the third, and the stage must be extracted instead.
        """
        probe = Path(tempfile.mkdtemp(prefix=".stack-probe-", dir=store_root))
        scratch = Path(tempfile.mkdtemp(prefix="stack-probe-", dir=work_root))
        stage, step = scratch / "stage", scratch / "step"
        mounted: list[Path] = []
        try:
            for directory in (stage, stage.with_name("stage.upper"), stage.with_name("stage.work"),
                              step, step.with_name("step.upper"), step.with_name("step.work")):
                directory.mkdir()
            mount_overlay([probe], stage.with_name("stage.upper"), stage.with_name("stage.work"), stage,
                          userxattr=userxattr)
            mounted.append(stage)
            mount_overlay([stage], step.with_name("step.upper"), step.with_name("step.work"), step,
                          userxattr=userxattr)
            mounted.append(step)
            return True
        except OverlayError as exc:
            log.debug("stage trees cannot stack on %s: %s", store_root, exc)
            return False
        finally:
            for directory in reversed(mounted):
                unmount(directory)
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(probe, ignore_errors=True)

    def mount(self) -> None:
        for directory in (self.merged, self.upper, self.work):
            directory.mkdir(exist_ok=True)
        if self.frozen:
            mount_overlay([self.upper, *self.lowers], None, None, self.merged, userxattr=self.userxattr)
        else:
            mount_overlay(self.lowers, self.upper, self.work, self.merged, userxattr=self.userxattr)
        self.mounted = True

    def unmount(self) -> None:
        if self.mounted:
            unmount(self.merged)
            self.mounted = False

    def fold(self, step_upper: Path, changes: Sequence[Change]) -> None:
        """Move a RUN step's changes (its overlay upper dir over the mounted stage) into the stage."""
        self.unmount()
        try:
            fold_into_upper(step_upper, self.upper, changes, lowers=self.lowers, userxattr=self.userxattr)
        finally:
            self.mount()

    def freeze(self) -> None:
        """The stage is built: keep its tree readable, and its directories fit to stack on."""
        if not self.frozen:
            self.unmount()
            self.frozen = True
            self.mount()

    def stacked_lowers(self) -> list[Path]:
        """What a stage built FROM this one stacks on (topmost first)."""
        return [self.upper, *self.lowers]

    def remove(self) -> None:
        """Unmount, then delete this stage's own directories (never the shared lower dirs)."""
        try:
            self.unmount()
        except OverlayError:
            unmount(self.merged, lazy=True)
            self.mounted = False
        for directory in (self.merged, self.upper, self.work):
            shutil.rmtree(directory, ignore_errors=True)


_KEPT_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


def fold_into_upper(step_upper: Path, upper: Path, changes: Sequence[Change], *, lowers: Sequence[Path],
                    userxattr: bool) -> None:
    """Move the changes recorded in `step_upper` (as `changes_from_upper` read them) into the upper dir
    `upper` of an unmounted overlay over `lowers` (topmost first), in overlay's format (`userxattr`: its
    user.* dialect), by renames.

    A change's parent is always there: the step's upper dir holds the parents of what it changed,
    and they come first (moved whole, or already in `upper`). A deletion becomes a whiteout only
    where a lower dir would show the path: overlayfs lists a directory that is not merged with a
    lower one as it is, so a whiteout there would be seen as an entry."""
    moved: set[str] = set()
    dir_times: list[tuple[str, os.stat_result]] = []
    for change in changes:  # sorted: a parent comes before its children
        if inside_any(change.path, moved):
            continue
        src, dst = os.path.join(step_upper, change.path), os.path.join(upper, change.path)
        st = os.lstat(src)
        target = _lstat(dst)
        if stat.S_ISDIR(st.st_mode) and change.kind not in ("opaque", "delete") and target is not None \
                and stat.S_ISDIR(target.st_mode):
            _copy_metadata(src, dst, st)
            dir_times.append((dst, st))
            continue
        replaces_whiteout = target is not None and _is_whiteout(target)
        if target is not None:
            _remove(dst, target)
        if change.kind == "delete" and not _shown_by_lowers(upper, lowers, change.path):
            os.unlink(src)
            continue
        os.rename(src, dst)
        if stat.S_ISDIR(st.st_mode):
            _keep_only_opaque_markers(dst)
            if replaces_whiteout:  # the layers below hid nothing here before; they must not show now
                os.setxattr(dst, _KEPT_XATTRS[1] if userxattr else _KEPT_XATTRS[0], b"y", follow_symlinks=False)
            moved.add(change.path)
    for path, st in reversed(dir_times):
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _shown_by_lowers(upper: Path, lowers: Sequence[Path], rel: str) -> bool:
    """Whether the overlay of `lowers` under `upper` would show `rel` if `upper` had nothing at that path.

    overlayfs looks a name up from the top: an opaque directory stops the search below it, a whiteout
    or a non-directory on the way hides everything under it.
    """
    parts = rel.split("/")
    if any(_is_opaque(os.path.join(upper, *parts[:i])) for i in range(1, len(parts))):
        return False
    for lower in lowers:
        opaque_here = False
        for i in range(1, len(parts)):
            st = _lstat(os.path.join(lower, *parts[:i]))
            if st is None:
                break  # this lower has nothing on the way: look further down, unless it stopped the search
            if not stat.S_ISDIR(st.st_mode):
                return False  # a file or a whiteout on the way hides the layers below
            opaque_here = opaque_here or _is_opaque(os.path.join(lower, *parts[:i]))
        else:
            st = _lstat(os.path.join(lower, rel))
            if st is not None:
                return not _is_whiteout(st)
        if opaque_here:
            return False
    return False


def _is_opaque(path: str) -> bool:
    for name in _KEPT_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _remove(path: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _xattr_names(path: str) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return []
        raise


def _copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    """A directory on both sides: the step's owner, mode and xattrs, the stage's overlay markers kept."""
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    overlay = ("trusted.overlay.", "user.overlay.")
    wanted = {name: os.getxattr(src, name, follow_symlinks=False)
              for name in _xattr_names(src) if not name.startswith(overlay)}
    for name in _xattr_names(dst):
        if name not in wanted and not name.startswith(overlay):
            os.removexattr(dst, name, follow_symlinks=False)
    for name, value in wanted.items():
        os.setxattr(dst, name, value, follow_symlinks=False)


def _keep_only_opaque_markers(top: str) -> None:
    """The step overlay's other bookkeeping (origin, impure, ...) names its own layers: it must not move."""
    for dirpath, dirnames, filenames in os.walk(top):
        for path in (dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)):
            for name in _xattr_names(path):
                if name.startswith(("trusted.overlay.", "user.overlay.")) and name not in _KEPT_XATTRS:
                    os.removexattr(path, name, follow_symlinks=False)
