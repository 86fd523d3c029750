"""`RegistryClient`: the one object the builder and the CLI hold to talk to registries.

A thin facade: the verbs live in their own modules (manifests, blobs, push,
tags, cleanup) and share one `Session` (per-host clients, auth, the retry
policy). Callers never need the session or HTTP statuses: a missing manifest
is `None` from `find_manifest` (or a `NotFoundError`), tags are listed and
deleted here, layers of a resolved image come back as lazy `RemoteLayer`s.
Docker Hub reads go to the configured mirrors first and fall back to Docker
Hub itself, as docker's ``registry-mirrors`` do.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Self, TypeVar

import httpx

from oci import mediatypes as mt
from oci.blobstore import BlobStore
from oci.digest import Digest, VerifyingReader
from oci.layer import Layer
from oci.models import Descriptor, Platform
from registry import blobs, cleanup, manifests, push, tags
from registry.auth import CONTEXT, SCOPES
from registry.cleanup import CleanupPlan, CleanupPolicy
from registry.errors import AuthError, InvalidResponseError, NotFoundError, RegistryError
from registry.layer import RemoteLayer
from registry.manifests import ResolvedImage
from registry.options import RegistryOptions
from registry.progress import Progress
from registry.pusher import BlobPusher
from registry.reference import DEFAULT_REGISTRY, Reference
from registry.session import Session

__all__ = ["RegistryClient", "RegistryOptions", "ResolvedImage"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class RegistryClient:
    """Reads from and pushes to OCI registries. Thread-safe; close it (or use `with`) when done."""

    def __init__(self, options: RegistryOptions | None = None, *, progress: Progress | None = None,
                 environ: Mapping[str, str] | None = None, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        """`transport`, `clock` and `sleep` are for tests: a MockTransport, a fake clock (token
        lifetimes), a recorded sleep (retry waits)."""
        self.options = options or RegistryOptions()
        self.session = Session(self.options, environ=environ, transport=transport, clock=clock, sleep=sleep)
        self.progress = progress

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    # -- mirrors -----------------------------------------------------------------------------
    def read_candidates(self, ref: Reference) -> list[Reference]:
        """Where to read `ref` from, in order: its registry's mirrors (--registry-map, and
        --registry-mirror for Docker Hub), then the reference itself unless told not to fall back."""
        mirrors = [*self.options.registry_maps.get(ref.registry, ()),
                   *(self.options.mirrors if ref.registry == DEFAULT_REGISTRY else ())]
        if not mirrors:
            return [ref]
        out = []
        for mirror in mirrors:
            host, _, prefix = mirror.removeprefix("https://").removeprefix("http://").partition("/")
            out.append(ref.with_registry(host, prefix))
        return out if self.options.skip_default_registry_fallback else [*out, ref]

    def _from_mirrors(self, ref: Reference, action: Callable[[Reference], T]) -> T:
        candidates = self.read_candidates(ref)
        for candidate in candidates[:-1]:
            try:
                return action(candidate)
            except (RegistryError, OSError) as exc:
                log.info("mirror %s: %s; trying the next source", candidate.registry, exc)
        return action(candidates[-1])

    # -- reading -----------------------------------------------------------------------------
    def get_manifest(self, ref: Reference, accept: str = mt.MANIFEST_ACCEPT) -> tuple[bytes, str, Digest]:
        """(raw, media type, digest) of `ref`'s manifest; the digest is verified when `ref` names one."""
        return self._from_mirrors(ref, lambda r: manifests.get_manifest(self.session, r, accept))

    def find_manifest(self, ref: Reference, accept: str = mt.MANIFEST_ACCEPT) -> tuple[bytes, str, Digest] | None:
        """`get_manifest`, or None when the registry says the manifest (or the whole repository) is not there."""
        try:
            return self.get_manifest(ref, accept)
        except NotFoundError:
            return None

    def head_manifest(self, ref: Reference, accept: str = mt.MANIFEST_ACCEPT) -> Descriptor:
        return manifests.head_manifest(self.session, ref, accept)

    def resolve_image(self, ref: Reference, platform: Platform) -> ResolvedImage:
        """`ref`'s image for `platform` (following an index), with its config."""
        return self._from_mirrors(ref, lambda r: manifests.resolve_image(self.session, r, platform))

    def remote_layers(self, image: ResolvedImage, store: BlobStore) -> tuple[RemoteLayer, ...]:
        """`image`'s layers as lazy layers of its source repository (fetched into `store` when opened)."""
        layers, diff_ids = image.manifest.layers, image.config.diff_ids
        if len(layers) != len(diff_ids):
            raise InvalidResponseError(f"image {image.source}: its config lists {len(diff_ids)} diff_ids "
                                       f"but its manifest {len(layers)} layers")
        return tuple(self.remote_layer(image.source, desc, diff_id, store) for desc, diff_id in zip(layers, diff_ids))

    def remote_layer(self, ref: Reference, descriptor: Descriptor, diff_id: Digest, store: BlobStore) -> RemoteLayer:
        """One lazy layer of `ref`'s repository (go-containerregistry's ``remote.Layer``): nothing is sent yet."""
        return RemoteLayer(descriptor, diff_id, ref, self, store)

    def blob_exists(self, ref: Reference, digest: Digest) -> bool:
        return blobs.blob_exists(self.session, ref, digest)

    @contextmanager
    def open_blob(self, ref: Reference, descriptor: Descriptor) -> Iterator[VerifyingReader]:
        """A stream of the blob, verified against `descriptor` as it is read (mismatch raises at EOF)."""
        with blobs.open_blob(self.session, ref, descriptor) as reader:
            yield reader

    def download_blob(self, ref: Reference, descriptor: Descriptor, store: BlobStore) -> Path:
        """The blob's path in `store`, downloading (verified, atomic, resumable) when missing."""
        return self._from_mirrors(ref, lambda r: blobs.download_blob(self.session, r, descriptor, store,
                                                                     progress=self.progress))

    # -- writing -----------------------------------------------------------------------------
    def put_manifest(self, ref: Reference, raw: bytes, media_type: str) -> Digest:
        return manifests.put_manifest(self.session, ref, raw, media_type)

    def delete_manifest(self, ref: Reference, digest: Digest) -> None:
        manifests.delete_manifest(self.session, ref, digest)

    def push_image(self, destinations: Sequence[Reference], manifest_raw: bytes, manifest_media_type: str,
                   config_raw: bytes, layers: Sequence[Layer], mount_sources: Sequence[Reference] = ()) -> Digest:
        """Push blobs (HEAD, mount, upload), then the manifest to each destination; returns its digest."""
        return push.push_image(self.session, destinations, manifest_raw, manifest_media_type, config_raw, layers,
                               mount_sources, progress=self.progress)

    def blob_pusher(self, mount_sources: Sequence[Reference] = ()) -> BlobPusher:
        """A pusher to feed blobs to while they are still being made; its `push_image` puts the manifests
        after them (registry/pusher.py). Close it (or use `with`) when done."""
        return BlobPusher(self.session, mount_sources=mount_sources, progress=self.progress)

    # -- tags --------------------------------------------------------------------------------
    def resolve_credentials(self, registries: Iterable[str]) -> None:
        """Find the credentials of `registries` now (explicit, CI variables, docker's config and helpers) and keep
        them for this client's life: a build calls it before its first step (registry/session.py says why)."""
        for registry in dict.fromkeys(registries):
            self.session.credentials_for(registry)

    def list_tags(self, repo: Reference, *, page_size: int | None = None) -> list[str]:
        """Every tag of `repo`'s repository (following the registry's pagination)."""
        return tags.list_tags(self.session, repo.repo_ref, page_size=page_size)

    def delete_tag(self, ref: Reference) -> Digest:
        """Delete `ref`'s tag only (other tags of the same manifest stay); the digest it named.

        A tag that is not there is a `NotFoundError` (code ``MANIFEST_UNKNOWN``).
        """
        return tags.delete_tag(self.session, ref)

    def cleanup(self, repo: Reference, policy: CleanupPolicy, *, dry_run: bool = False, now: dt.datetime | None = None,
                cache_entries: bool = False, source_date_epoch: int | None = None) -> CleanupPlan:
        """Apply a GitLab-style cleanup `policy` to `repo` through the registry API; the plan carried out
        (or, with `dry_run`, that would be). `cache_entries` dates tags by their layer-cache store time."""
        return cleanup.run_cleanup(self.session, repo.repo_ref, policy, dry_run=dry_run, now=now,
                                   cache_entries=cache_entries, source_date_epoch=source_date_epoch)

    def check_login(self, registry: str) -> None:
        """Authenticate against `registry` (``GET /v2/`` and its challenge); `AuthError` if refused."""
        probe = Reference(registry, "wharfie-login-check")
        what = f"login to {registry}"

        def ping() -> httpx.Response:
            host = self.session.host(registry)
            request = host.client.build_request("GET", f"{host.base_url}/v2/", extensions={SCOPES: (), CONTEXT: registry})
            return self.session.send(probe, request, ok=(200, 401), action="pull", what=what)

        response = self.session.retry(ping, what=what)
        host = self.session.host(registry)
        if response.status_code == 401:
            raise AuthError(f"unauthorized: login to {registry} failed{host.auth.who()}", status=401)
