"""The remote layer cache: each step's result stored as a tiny image in a cache repository.

An entry is `CACHE_REPO:KEY` (the key from builder/cache_key.py): an OCI
manifest with the step's layer (or none, for a step that changed nothing),
the layer's diff_id in the layer descriptor's annotations and the time it was
stored in the manifest's (`CACHE_STORED_ANNOTATION`: the entry's true age for
``--cache-ttl`` and ``cache prune``, whatever date ``--reproducible`` gives
images; it need not be reproducible, the entry's tag is its key), so a lookup
is one manifest GET and a hit downloads nothing: the layer stays a
`RemoteLayer` in the cache repository, fetched only if a later step must run
on top of it, and mounted by the final push.

Stores happen in the background while the build goes on; a failure to store
is a warning, never a build failure. A cache that cannot be read (no
permission, unreachable) is switched off with one warning.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from builder.image.base import RemoteLayer
from builder.image.state import timestamp
from oci import mediatypes as mt
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.errors import WharfieError
from oci.layer import Layer
from oci.models import ContainerConfig, Descriptor, History, ImageConfig, Manifest, Platform
from registry.cleanup import CACHE_STORED_ANNOTATION
from registry.client import RegistryClient
from registry.errors import RegistryError
from registry.pusher import BlobPusher
from registry.reference import Reference

__all__ = ["CACHE_STEPS_ANNOTATION", "CacheHit", "CacheOptions", "LayerCache", "encode_steps"]

log = logging.getLogger("wharfie")

_DIFF_ID = "io.wharfie.cache.diff-id"
_CREATED = "org.opencontainers.image.created"
_KEY = "io.wharfie.cache.key"
# On images built with --cache: which layer each filesystem step's key produced,
# so the image itself can serve as a cache source (--cache-from).
CACHE_STEPS_ANNOTATION = "io.wharfie.cache.steps"


def encode_steps(steps: Sequence[tuple[str, int]]) -> str:
    return json.dumps([[key, index] for key, index in steps], separators=(",", ":"))


@dataclass(frozen=True)
class CacheOptions:
    enabled: bool = False
    repo: str | None = None  # the cache repository (no tag)
    ttl_seconds: int = 336 * 3600
    push: bool = True
    cache_run_layers: bool = True
    cache_copy_layers: bool = True
    cache_from: tuple[str, ...] = ()  # images built with --cache whose layers may serve as hits


@dataclass(frozen=True)
class CacheHit:
    layer: Layer | None  # None: the step changed nothing
    created: str


class LayerCache:
    def __init__(self, options: CacheOptions, repo: Reference | None, *, client: RegistryClient, store: BlobStore,
                 platform: Platform, epoch: int | None, pusher: BlobPusher | None = None) -> None:
        """`pusher`: the build's, so a layer also pushed to a destination of the same registry goes up once."""
        self.options = options
        self.pusher = pusher
        self.repo = repo
        self.client = client
        self.store = store
        self.platform = platform
        self.epoch = epoch
        self._readable = options.enabled and repo is not None
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cache-store")
        self._pending: list[tuple[str, Future[None]]] = []
        self._from_images: dict[str, CacheHit] = {}

    @property
    def active(self) -> bool:
        return self._readable or bool(self._from_images)

    def add_source(self, ref: Reference) -> None:
        """Use an image built with --cache as a source of hits (`--cache-from`); a missing one is a warning."""
        try:
            resolved = self.client.resolve_image(ref, self.platform)
        except WharfieError as exc:
            log.warning("warning: --cache-from %s ignored: %s", ref, exc)
            return
        raw = (resolved.manifest.annotations or {}).get(CACHE_STEPS_ANNOTATION)
        if raw is None:
            log.warning("warning: --cache-from %s ignored: it was not built with --cache", ref)
            return
        created = resolved.config.created or ""
        layers, diff_ids = resolved.manifest.layers, resolved.config.diff_ids
        try:
            steps = [(str(key), int(index)) for key, index in json.loads(raw)]
        except (TypeError, ValueError) as exc:
            log.warning("warning: --cache-from %s ignored: malformed %s annotation: %s", ref, CACHE_STEPS_ANNOTATION, exc)
            return
        for key, index in steps:
            layer = None
            if 0 <= index < min(len(layers), len(diff_ids)):
                desc = layers[index]
                layer = RemoteLayer(Descriptor(desc.media_type, desc.digest, desc.size), diff_ids[index],
                                    resolved.source, self.client, self.store)
            self._from_images.setdefault(key, CacheHit(layer, created))

    def lookup(self, key: str) -> CacheHit | None:
        if key in self._from_images:
            log.info("  cache hit %s (--cache-from)", key[:12])
            return self._from_images[key]
        if not self._readable or self.repo is None:
            return None
        ref = self.repo.with_tag(key)
        try:
            found = self.client.find_manifest(ref, accept=mt.OCI_MANIFEST)
        except RegistryError as exc:
            log.warning("warning: layer cache %s unreadable, building without it: %s", self.repo.name, exc)
            self._readable = False
            return None
        if found is None:
            log.debug("cache miss %s", key[:12])
            return None
        raw, _media_type, _digest = found
        try:
            manifest = Manifest.from_bytes(raw)
            annotations = manifest.annotations or {}
            created = annotations.get(CACHE_STORED_ANNOTATION) or annotations.get(_CREATED, "")
            if self._expired(created):
                log.info("cache entry %s expired (created %s)", key[:12], created)
                return None
            layer: Layer | None = None
            if manifest.layers:
                desc = manifest.layers[0]
                diff_id = Digest.parse((desc.annotations or {})[_DIFF_ID])
                plain = Descriptor(desc.media_type, desc.digest, desc.size)
                layer = RemoteLayer(plain, diff_id, self.repo, self.client, self.store)
        except (WharfieError, KeyError, TypeError, ValueError) as exc:
            log.warning("warning: cache entry %s is malformed, rebuilding the step: %s", key[:12], exc)
            return None
        log.info("  cache hit %s", key[:12])
        return CacheHit(layer, created)

    def _expired(self, created: str) -> bool:
        try:
            when = _dt.datetime.fromisoformat(created)
            if when.tzinfo is None:
                return True
        except ValueError:
            return True
        age = _dt.datetime.now(_dt.UTC) - when
        return age.total_seconds() > self.options.ttl_seconds

    def store_entry(self, key: str, layer: Layer | None, history: History, inputs: dict[str, str]) -> None:
        """Push the step's result to `CACHE_REPO:KEY` in the background.

        `inputs` (the previous key, the instruction) are recorded as labels of
        the entry's config, so a surprising miss can be explained later.
        """
        if not (self.options.enabled and self.options.push and self.repo is not None):
            return
        self._pending.append((key, self._pool.submit(self._push, key, layer, history, inputs)))

    def _push(self, key: str, layer: Layer | None, history: History, inputs: dict[str, str]) -> None:
        assert self.repo is not None
        layers: Sequence[Layer] = (layer,) if layer is not None else ()
        labels = {f"io.wharfie.cache.{name}": value for name, value in inputs.items()}
        config = ImageConfig(architecture=self.platform.architecture, os=self.platform.os,
                             variant=self.platform.variant, created=timestamp(None),
                             config=ContainerConfig(labels={_KEY: key, **labels}),
                             diff_ids=tuple(l.diff_id for l in layers), history=(history,))
        config_raw = config.to_bytes()
        manifest = Manifest(
            media_type=mt.OCI_MANIFEST,
            config=Descriptor(mt.OCI_CONFIG, Digest.of_bytes(config_raw), len(config_raw)),
            layers=tuple(Descriptor(mt.layer_media_type(mt.LAYER_COMPRESSION.get(l.media_type, "gzip"), oci=True),
                                    l.digest, l.size, annotations={_DIFF_ID: str(l.diff_id)}) for l in layers),
            annotations={_CREATED: config.created or "", _KEY: key, CACHE_STORED_ANNOTATION: timestamp(None)},
        )
        if self.pusher is not None:
            self.pusher.push_image([self.repo.with_tag(key)], manifest.to_bytes(), mt.OCI_MANIFEST, config_raw, layers)
        else:
            self.client.push_image([self.repo.with_tag(key)], manifest.to_bytes(), mt.OCI_MANIFEST, config_raw, layers)

    def abandon(self) -> None:
        """Drop the stores that have not started and wait for the running ones (a cancelled build)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending = [(key, future) for key, future in self._pending if not future.cancelled()]
        self.wait()

    def wait(self) -> None:
        """Wait for background stores; failures become warnings."""
        for key, future in self._pending:
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - a cache store must never fail the build
                log.warning("warning: could not store cache entry %s: %s", key[:12], exc)
        self._pending.clear()
        self._pool.shutdown(wait=True)
