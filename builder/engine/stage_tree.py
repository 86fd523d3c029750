"""Where a stage's filesystem comes from: stacked on the machine's unpacked layers, or extracted afresh.

Stacking (builder/execution/stacked_rootfs.py over builder/image/unpacked_store.py)
needs what the CLI checks before the build: a sandbox whose RUN steps use
overlay snapshots, and a mount namespace of the build's own
(`BuildOptions.layer_store`). Then a stage FROM an image mounts its base's
layer directories, unpacked once per machine, and a stage FROM another stage
stacks on that stage's directories. Elsewhere (in-place builds, no overlay,
more layers than one mount's options can name, `FROM scratch`) the stage's
tree is extracted into a plain directory as before.
"""

from __future__ import annotations

import logging
from pathlib import Path

from builder.execution.stacked_rootfs import StackedRootfs
from builder.image.base import materialize
from builder.image.state import ImageState
from builder.image.unpacked_store import UnpackedStore
from layers.overlay import OverlayError

__all__ = ["stack_rootfs"]

log = logging.getLogger("wharfie")


def stack_rootfs(store: UnpackedStore | None, rootfs: Path, state: ImageState,
                 parent: tuple[StackedRootfs, ImageState] | None) -> StackedRootfs | None:
    """Mount the stage's tree at `rootfs`, stacked, and return it; None where it must be extracted instead.

    `parent` is the stacked tree and state of the stage this one is built FROM, if any; layers the
    state has beyond the parent's (cache hits) are extracted onto the mounted tree.
    """
    if store is None:
        return None
    if parent is not None:
        tree, parent_state = parent
        tree.freeze()
        lowers, done = tree.stacked_lowers(), len(parent_state.layers)
    elif state.layers:
        lowers, done = list(reversed(store.lower_dirs(state.layers))), len(state.layers)
    else:
        return None  # FROM scratch: an empty directory is all there is
    if not StackedRootfs.fits(lowers):
        log.info("%d layers are more than one overlay mount can stack: extracting them instead", len(lowers))
        return None
    stacked = StackedRootfs(rootfs, lowers, userxattr=store.userxattr)
    try:
        stacked.mount()
    except OverlayError as exc:
        log.info("cannot stack the stage's layers (%s): extracting them instead", exc)
        stacked.remove()
        return None
    try:
        rest = state.layers[done:]
        if rest:
            materialize(ImageState(config=state.config, layers=rest), rootfs)
    except BaseException:
        stacked.remove()
        raise
    log.debug("stage tree %s: %d layer dirs stacked", rootfs, len(lowers))
    return stacked
