"""Driving one build step's snapshot: overlay when the kernel allows it, the walk otherwise.

    with snapshot_step(rootfs, ignore=("proc", "sys", "dev")) as snap:
        run_the_step(snap.workdir)          # the rootfs itself, or an overlay mounted over it
        changes = snap.finish()
        layer = write_layer(changes, snap.source_root, store)
    # here rootfs holds the step's result, whichever snapshotter ran

The overlay snapshotter mounts `lower=rootfs, upper=EMPTY` in a scratch dir
next to the rootfs, so reading the change costs what the step changed, not
the size of the image. On exit the upper dir is moved into the rootfs with
renames (same filesystem), again at the cost of the change
(`overlay.merge_upper`, the fold-back RUN steps use too). When an overlay
cannot be mounted (no privilege, no kernel support, scratch on another
filesystem) the walk snapshotter is used and the fallback is logged once.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from layers.changes import Change
from layers.overlay import (
    OverlayError,
    changes_from_upper,
    in_user_namespace,
    merge_upper,
    mount_overlay,
    overlay_supported,
    unmount,
)
from layers.walk import Snapshot, SnapshotMode, diff

__all__ = ["StepSnapshot", "snapshot_step"]

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
