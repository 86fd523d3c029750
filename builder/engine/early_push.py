"""Pushing the image's layers while the build goes on, so that only the manifest waits at the end.

The target stage's layers are the image's: its base's layers are offered
when the stage starts (they are mounted from the base's repository while the
first steps run), and each layer a step writes is offered as soon as it is
committed, and a layer written for it is readable while it is written
(`growing`), so a large one goes up chunk by chunk as it is compressed
rather than after. The build's `BlobPusher` (registry/pusher.py) makes each present
in every destination repository in the background; `deliver` then joins
them in `push_image` before any manifest is PUT. A failure already seen stops
the build at the next step instead of at its end. Layers of other stages are
never offered: they do not belong to the image.
"""

from __future__ import annotations

from collections.abc import Sequence

from oci.growing_blob import GrowingBlob
from oci.layer import Layer
from registry.pusher import BlobPusher
from registry.reference import Reference

__all__ = ["EarlyPush"]


class EarlyPush:
    def __init__(self, pusher: BlobPusher, destinations: Sequence[Reference], target_stage: int) -> None:
        self.pusher = pusher
        self.repos = tuple(dict.fromkeys(ref.repo_ref for ref in destinations))
        self.target_stage = target_stage

    def growing(self, stage_index: int) -> GrowingBlob | None:
        """A blob for the layer the stage is about to write, streamed to the destinations as it grows."""
        if stage_index != self.target_stage:
            return None
        blob = GrowingBlob()
        self.pusher.stream(blob, self.repos)
        return blob

    def offer(self, stage_index: int, layers: Sequence[Layer]) -> None:
        """Start pushing the target stage's layers not offered yet; raise a push failure seen so far."""
        if stage_index != self.target_stage:
            return
        for layer in layers:
            self.pusher.add(layer, self.repos)  # a layer offered before is not pushed again
        failure = self.pusher.failure(self.repos)
        if failure is not None:
            raise failure
