"""One layer in place of a stage's own layers: kaniko's --single-snapshot, as a pure change of an image.

The stage's steps keep their history entries, marked empty; the last one
carries the single layer, as kaniko attributes its one snapshot to the stage's
last command. The layer itself is the difference between the stage's base
tree and its final tree (builder/engine/stage.py takes both snapshots).
"""

from __future__ import annotations

from dataclasses import replace

from builder.image.state import ImageState
from oci.layer import Layer

__all__ = ["squash_since"]


def squash_since(state: ImageState, *, layers_kept: int, history_kept: int, layer: Layer | None) -> ImageState:
    """`state` with every layer after the first `layers_kept` replaced by `layer` (None: the steps changed nothing)."""
    history = state.config.history
    steps = [replace(entry, empty_layer=True) for entry in history[history_kept:]]
    if layer is not None:
        if not steps:
            raise ValueError("a single snapshot needs the steps it replaces")
        steps[-1] = replace(steps[-1], empty_layer=False)
    added = (layer,) if layer is not None else ()
    config = replace(state.config, diff_ids=(*state.config.diff_ids[:layers_kept], *(a.diff_id for a in added)),
                     history=(*history[:history_kept], *steps))
    return replace(state, config=config, layers=(*state.layers[:layers_kept], *added))
