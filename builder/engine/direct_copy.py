"""COPY from the context written straight into its layer; its files reach the rootfs only if needed.

A COPY that only creates paths has its layer planned from its sources
(builder/steps/direct_copy.py) and written from the context, without a copy
into the stage's tree and the two walks around it. The files are then
"pending": a later step that may read them (a RUN, an ADD or COPY, a
WORKDIR on their way, another stage reading this one) first extracts the
pending layers onto the tree, in order, so it sees exactly what the copy
would have left. The target stage's tree is read by nothing after its last
step, so a final COPY never touches a disk but its layer's.
"""

from __future__ import annotations

import logging
import os
import posixpath
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from builder.engine.session import BuildSession
from builder.frontend import instructions as ins
from builder.frontend.globmatch import match_path
from builder.frontend.plan import Stage
from builder.image.state import ImageState
from builder.steps.copy import CopyOptions, parse_chmod, safe_join, select_sources
from builder.steps.direct_copy import plan_direct_copy
from builder.steps.userdb import resolve_chown
from layers.extract import extract_layer
from layers.writer import write_planned_layer
from oci.layer import Layer, StoredLayer

__all__ = ["PendingCopies", "reads_of", "try_direct_copy"]

log = logging.getLogger("wharfie")

_USER_DB = ("etc/passwd", "etc/group")


class PendingCopies:
    """Layers of direct COPYs whose files are not in the stage's tree yet, and the paths they fill."""

    def __init__(self) -> None:
        self._layers: list[tuple[Layer, str]] = []

    def __bool__(self) -> bool:
        return bool(self._layers)

    def add(self, layer: Layer, prefix: str) -> None:
        self._layers.append((layer, prefix))

    def touches(self, rootfs: Path, paths: Iterable[str]) -> bool:
        """Whether reading `paths` (absolute or relative to `/`) could meet a pending file.

        A path on the way to, at or below a pending one does; so does any path whose resolution
        follows a symlink, which could lead anywhere.
        """
        prefixes = [prefix for _, prefix in self._layers]
        for path in paths:
            rel = os.path.normpath("/" + path).strip("/")
            if safe_join(rootfs, rel, follow_last=True) != rootfs.joinpath(*[p for p in rel.split("/") if p]):
                return True
            if any(not rel or rel == p or rel.startswith(p + "/") or p.startswith(rel + "/") for p in prefixes):
                return True
        return False

    def materialize(self, rootfs: Path) -> None:
        """Extract every pending layer onto `rootfs`, oldest first."""
        for layer, prefix in self._layers:
            log.info("  placing /%s in the tree for the steps that read it", prefix)
            with layer.open_compressed() as blob:
                extract_layer(blob, rootfs)
        self._layers.clear()


class CopyingStage(Protocol):
    """What a direct COPY needs of the stage building it (builder/engine/stage.py's StageBuilder)."""

    session: BuildSession
    stage: Stage
    state: ImageState
    pending: PendingCopies

    def ensure_rootfs(self) -> Path: ...
    def _source_root(self, instr: ins.COPY | ins.ADD,
                     scratch: Path) -> tuple[Path, Callable[[str], bool] | None]: ...
    def _commit(self, layer: StoredLayer | None, created_by: str) -> None: ...


def try_direct_copy(builder: CopyingStage, instr: ins.COPY | ins.ADD, created_by: str) -> bool:
    """Build `instr` as a direct COPY when it qualifies; True if it was (the step is then done)."""
    options = builder.session.options
    if (not isinstance(instr, ins.COPY) or instr.from_ is not None or instr.heredocs or instr.parents
            or options.isolation.mode == "in-place" or len(instr.sources) != 1):
        return False
    rootfs = builder.ensure_rootfs()
    if builder.pending:
        builder.pending.materialize(rootfs)  # planning reads the tree: it must be whole
    src_root, excluded = builder._source_root(instr, Path(tempfile.gettempdir()))
    sources = select_sources(src_root, list(instr.sources), what="COPY", excluded=excluded, match=match_path)
    uid, gid = resolve_chown(rootfs, instr.chown) if instr.chown else (0, 0)
    copy_options = CopyOptions(uid=uid, gid=gid, chmod=parse_chmod(instr.chmod, instr.line), excluded=excluded)
    ignore = [p.strip("/") for p in options.ignore_paths if p.strip("/")]

    def ignored(rel: str) -> bool:
        return any(rel == p or rel.startswith(p + "/") or p.startswith(rel + "/") for p in ignore)

    plan = plan_direct_copy(rootfs, src_root, sources, instr.dest,
                            workdir=builder.state.config.config.working_dir or "/", options=copy_options,
                            what="COPY", now_ns=time.time_ns(), ignored=ignored)
    if plan is None:
        return False
    output = options.output
    layer = write_planned_layer(plan.entries, builder.session.store, compression=output.compression,
                                level=output.compression_level, epoch=options.source_date_epoch,
                                oci=output.manifest_format == "oci",
                                growing=builder.session.growing_layer(builder.stage.index))
    builder.session.log.info("  layer %s (%d entries, %d bytes, straight from the context)", layer.digest.short,
                             len(plan.entries), layer.size)
    builder._commit(layer, created_by)
    builder.pending.add(layer, plan.prefix)
    return True


def reads_of(instr: ins.Instruction, workdir: str) -> tuple[str, ...] | None:
    """The paths a step reads from the tree when they are known (a WORKDIR: its path and the user
    database); None: it may read anything."""
    if isinstance(instr, ins.WORKDIR):
        path = instr.path if instr.path.startswith("/") else posixpath.join(workdir, instr.path)
        return (path, *_USER_DB)
    return None
