"""layers: filesystem changes to tar layers and back.

- `walk` and `overlay` find what a step changed (a list of `changes.Change`),
  `snapshotter.snapshot_step` picks one of them per step (overlay when allowed);
  `overlay.merge_upper` folds an overlay's upper dir back into the rootfs;
- `writer` streams those changes into a deterministic, compressed layer blob
  (diff_id, digest and size in one pass) through `compress` and `sink`;
- `extract` applies a layer onto a rootfs, refusing to write outside it
  (`securepath`), restoring metadata where permitted (`restore`).

Nothing here imports builder/ or registry/.
"""

from layers.changes import Change
from layers.compress import open_decompressed
from layers.extract import extract_layer
from layers.overlay import changes_from_upper, merge_upper, mount_overlay, overlay_supported, unmount
from layers.snapshotter import StepSnapshot, snapshot_step
from layers.walk import Snapshot, diff, mount_points
from layers.writer import write_layer, write_tree_layer

__all__ = [
    "Change",
    "Snapshot",
    "StepSnapshot",
    "changes_from_upper",
    "diff",
    "extract_layer",
    "merge_upper",
    "mount_overlay",
    "mount_points",
    "open_decompressed",
    "overlay_supported",
    "snapshot_step",
    "unmount",
    "write_layer",
    "write_tree_layer",
]
