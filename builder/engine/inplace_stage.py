"""A stage built in place: its rootfs is `/`, cleared and extracted over, and stages kept apart.

Only what differs from `StageBuilder` lives here: where the tree is (`/`),
how it is set up (clear everything but the ignore list, then extract the
base's layers without touching ignored paths), and what snapshots skip.
Stages are kept apart through their layers: `/` holds one stage at a time,
and a later stage built FROM an earlier one, or copying from it, rebuilds
that stage's tree from its layers (into `/`, or into a work directory for
`COPY --from`), so no stage ever sees another's leftovers.
"""

from __future__ import annotations

import importlib
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from builder.engine.session import BuildSession, StageResult
from builder.engine.stage import StageBuilder
from builder.execution.inplace import InPlaceRunner, clear_root, extract_filtered, in_place_ignore
from builder.frontend.plan import BuildPlan, Stage
from oci.layer import Layer

__all__ = ["PRELOADED_MODULES", "InPlaceStageBuilder", "preload", "stage_builder_class"]

log = logging.getLogger("wharfie")

# Imported before `/` is cleared: afterwards the host's shared libraries that
# C extensions need may be gone (those already loaded stay mapped).
PRELOADED_MODULES = ("ssl", "zlib", "gzip", "bz2", "lzma", "hashlib", "json", "tarfile", "ctypes", "fcntl", "uuid",
            "concurrent.futures", "isal.igzip", "isal.isal_zlib", "zstandard", "httpx", "h11", "certifi",
            "builder.engine.build", "builder.engine.output", "builder.steps.copy", "builder.steps.add_sources",
            "layers.writer", "registry.push", "registry.upload", "registry.blobs")


def preload() -> None:
    for name in PRELOADED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            log.debug("preload: %s not importable", name)


class InPlaceStageBuilder(StageBuilder):
    """A `StageBuilder` whose filesystem is this container's own `/`."""

    def __init__(self, session: BuildSession, plan: BuildPlan, stage: Stage) -> None:
        super().__init__(session, plan, stage)
        options = session.options
        self.rootfs = Path("/")
        self.ignore = in_place_ignore(work_dir=session.work_dir, cache_dir=options.cache_dir,
                                      context=options.context, extra=options.ignore_paths)

    def ensure_rootfs(self) -> Path:
        if not self.extracted:
            preload()
            log.info("in place: clearing / (keeping %d ignored paths)", len(self.ignore))
            clear_root(self.rootfs, self.ignore)
            for layer in self.state.layers[:self.base[0]]:
                self._extract_onto(layer)
            self._snapshot_base()
            for layer in self.state.layers[self.base[0]:]:
                self._extract_onto(layer)
            self.extracted = True
        return self.rootfs

    def _snapshot_ignore(self) -> tuple[str, ...]:
        return (*super()._snapshot_ignore(), *self.ignore)

    def _extract_onto(self, layer: Layer) -> None:
        log.info("extracting %s over /", layer.digest.short)
        with tempfile.TemporaryDirectory(dir=self.session.work_dir, prefix="extract-") as scratch:
            extract_filtered(layer, self.rootfs, self.ignore, Path(scratch))

    def step_runner(self, scratch: Path) -> InPlaceRunner:
        return InPlaceRunner(self.ignore, scratch)

    def _snapshot_step(self, action: Callable[[Path], None], created_by: str, *, ignore: tuple[str, ...] = ()) -> None:
        super()._snapshot_step(action, created_by, ignore=(*ignore, *self.ignore))

    def run(self) -> StageResult:
        result = super().run()
        result.rootfs = None  # the next stage clears `/`: this stage lives on in its layers
        return result


def stage_builder_class(mode: str) -> type[StageBuilder]:
    """The one place the in-place mode is chosen: everything else it changes is `InPlaceStageBuilder`'s."""
    return InPlaceStageBuilder if mode == "in-place" else StageBuilder
