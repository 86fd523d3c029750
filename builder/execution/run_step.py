"""Running one RUN step and finding what it changed, the cheapest way this build allows.

- overlay (sandbox, where an overlay mounts): the step runs on
  `lower=rootfs, upper=EMPTY`; the upper dir *is* the change, so the cost
  follows what the step changed, not the image's size. The layer is written
  from the upper dir, then the upper dir is folded into the rootfs;
- walk (sandbox without overlay): the rootfs is walked before and after;
- in place (no namespaces): the same walks over `/`, skipping the in-place
  ignore list.

`run_step` is a context manager: the caller writes the layer from
`outcome.source_root` inside the `with`; leaving it finishes the step.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from builder.execution.hardlinks import LinkedFiles
from builder.execution.isolation import Isolation
from builder.execution.sandbox import OverlayDirs, RunFailed, RunSpec, run_in_sandbox
from builder.execution.work_tmpfs import filesystem_full
from layers.changes import Change
from layers.overlay import changes_from_upper, merge_upper
from layers.walk import Snapshot, SnapshotMode, diff

__all__ = ["StepOutcome", "run_step", "walk_mode", "without_ignored"]

Output = Callable[[str], None] | None
Fold = Callable[[Path, Sequence[Change]], None]


@dataclass(frozen=True)
class StepOutcome:
    changes: list[Change]  # what goes into the layer, sorted
    source_root: Path  # where the layer writer reads the changed files


def walk_mode(snapshot_mode: str) -> SnapshotMode:
    """kaniko's --snapshot-mode on the walk: `full` hashes contents; `redo` and `time` compare metadata."""
    return "full" if snapshot_mode == "full" else "metadata"


def without_ignored(changes: Sequence[Change], ignore: Sequence[str]) -> list[Change]:
    """`changes` less those at or below an ignored path."""
    prefixes = tuple(p.strip("/") for p in ignore if p.strip("/"))
    if not prefixes:
        return list(changes)
    return [c for c in changes if not any(c.path == p or c.path.startswith(p + "/") for p in prefixes)]


@contextmanager
def run_step(spec: RunSpec, *, isolation: Isolation, scratch: Path, ignore: Sequence[str], snapshot_mode: str,
             output: Output, runner: Callable[[RunSpec, Output], None] | None = None,
             fold: Fold | None = None) -> Iterator[StepOutcome]:
    """Run `spec`; yield its changes. `runner` replaces the sandbox (the in-place mode's runner);
    `fold` moves an overlay step's upper dir into a rootfs that is itself an overlay
    (builder/execution/stacked_rootfs.py) instead of `merge_upper`. A failed step's `RunFailed` says
    whether the work dir was full when it ended (`no_room`), before its upper dir is removed."""
    if isolation.mode == "sandbox" and isolation.snapshotter == "overlay" and runner is None:
        with _overlay_step(spec, isolation, scratch, ignore, output, fold) as outcome:
            yield outcome
        return
    run = runner or (lambda s, out: run_in_sandbox(s, output=out))
    mode = walk_mode(snapshot_mode)
    before = Snapshot.take(spec.root, ignore, mode=mode)
    with _noting_room(scratch):
        run(spec, output)
    changes = diff(before, Snapshot.take(spec.root, ignore, mode=mode))
    yield StepOutcome(changes, spec.root)


@contextmanager
def _noting_room(scratch: Path) -> Iterator[None]:
    try:
        yield
    except RunFailed as exc:
        exc.no_room = filesystem_full(scratch)
        raise


@contextmanager
def _overlay_step(spec: RunSpec, isolation: Isolation, scratch: Path, ignore: Sequence[str],
                  output: Output, fold: Fold | None) -> Iterator[StepOutcome]:
    dirs = OverlayDirs(scratch / "upper", scratch / "work", scratch / "merged", userxattr=isolation.rootless)
    for directory in (dirs.upper, dirs.work, dirs.merged):
        directory.mkdir(parents=True)
    try:
        linked = LinkedFiles.copy_up(spec.root, dirs.upper)  # so a write through one name reaches all
        with _noting_room(scratch):
            run_in_sandbox(replace(spec, overlay=dirs), output=output)
        linked.settle()
        everything = changes_from_upper(dirs.upper, [spec.root])
        yield StepOutcome(without_ignored(everything, ignore), dirs.upper)
        if fold is not None:
            fold(dirs.upper, everything)
        else:
            merge_upper(dirs.upper, spec.root, everything)
    finally:
        for directory in (dirs.upper, dirs.work, dirs.merged):
            shutil.rmtree(directory, ignore_errors=True)
