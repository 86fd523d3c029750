"""The image under construction, as an immutable value changed by small pure steps.

After go-containerregistry's `mutate`: `append_layer` and `add_history` return
new `ImageState`s, so a stage's state before and after a step are both at hand
(the cache and `COPY --from` need that) and nothing is changed behind a
caller's back.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, replace

from oci import mediatypes as mt
from oci.digest import Digest
from oci.layer import Layer
from oci.models import Descriptor, History, ImageConfig, Manifest

__all__ = ["ImageState", "add_history", "append_layer", "render_manifest", "timestamp"]


def timestamp(epoch: int | None) -> str:
    """RFC 3339 in UTC, as docker writes `created`: SOURCE_DATE_EPOCH when given, else now."""
    if epoch is not None:
        return _dt.datetime.fromtimestamp(epoch, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}Z"


@dataclass(frozen=True)
class ImageState:
    config: ImageConfig
    layers: tuple[Layer, ...] = ()

    def with_config(self, config: ImageConfig) -> ImageState:
        return replace(self, config=config)


def append_layer(state: ImageState, layer: Layer, history: History) -> ImageState:
    config = replace(state.config, diff_ids=(*state.config.diff_ids, layer.diff_id),
                     history=(*state.config.history, history))
    return replace(state, config=config, layers=(*state.layers, layer))


def add_history(state: ImageState, history: History) -> ImageState:
    return replace(state, config=replace(state.config, history=(*state.config.history, history)))


def render_manifest(state: ImageState, *, oci: bool, created: str | None,
                    annotations: dict[str, str] | None = None) -> tuple[bytes, bytes, str]:
    """Serialise config and manifest; returns (manifest bytes, config bytes, manifest media type).

    A Docker schema 2 manifest cannot name zstd layers, so any zstd layer forces OCI.
    """
    if any(layer.media_type == mt.OCI_LAYER_ZSTD for layer in state.layers):
        oci = True
    config = state.config if created is None else replace(state.config, created=created)
    config_raw = config.to_bytes()
    manifest = Manifest(
        media_type=mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
        config=Descriptor(mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG, Digest.of_bytes(config_raw), len(config_raw)),
        layers=tuple(Descriptor(_layer_type(layer.media_type, oci), layer.digest, layer.size) for layer in state.layers),
        annotations=annotations if oci and annotations else None,
    )
    return manifest.to_bytes(), config_raw, manifest.media_type


def _layer_type(media_type: str, oci: bool) -> str:
    compression = mt.LAYER_COMPRESSION.get(media_type, "gzip")
    return mt.layer_media_type(compression, oci=oci)


