"""The build's settings, made once by `builder.engine.api.build` (which the CLI calls) and read everywhere else.

Small frozen dataclasses rather than one options bag passed around (kaniko's
41-field struct): each part of the build takes the group it needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from builder.attest.options import AttestOptions
from builder.cache.layer_cache import CacheOptions
from builder.execution.isolation import Isolation
from builder.execution.run_mounts import SecretSource
from oci.models import Platform, host_platform

__all__ = ["BuildOptions", "OutputOptions", "default_cache_dir"]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wharfie"


@dataclass(frozen=True)
class OutputOptions:
    """Where the image goes."""

    destinations: tuple[str, ...] = ()
    no_push: bool = False
    digest_file: Path | None = None
    image_name_with_digest_file: Path | None = None  # REPO@DIGEST per destination (kaniko's format)
    image_name_tag_with_digest_file: Path | None = None  # REPO:TAG@DIGEST per destination
    tar_path: Path | None = None  # a docker archive (docker load, skopeo docker-archive:) tagged with the destinations
    ignore_immutable_tag_errors: bool = False  # kaniko's --push-ignore-immutable-tag-errors
    oci_layout_path: Path | None = None
    manifest_format: str = "oci"  # or "docker" (schema 2)
    compression: str = "gzip"
    compression_level: int | None = None


@dataclass(frozen=True)
class BuildOptions:
    context: Path
    dockerfile: Path
    output: OutputOptions = field(default_factory=OutputOptions)
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    platform: Platform = field(default_factory=host_platform)
    platform_requested: bool = False  # --platform given: base configs are labelled with it (builder/image/platforms.py)
    source_date_epoch: int | None = None
    network: str = "default"  # the RUN steps' network (builder/execution/network.py): default | host | none
    allow_host_network: bool = False  # --allow network.host: a Dockerfile's RUN --network=host is honoured
    cache_dir: Path = field(default_factory=default_cache_dir)
    cache: CacheOptions = field(default_factory=CacheOptions)
    work_dir: Path | None = None
    quiet: bool = False
    # How RUN steps are isolated (builder/execution/isolation.py), resolved by the CLI from --isolation.
    isolation: Isolation = field(default_factory=lambda: Isolation("sandbox"))
    secrets: tuple[SecretSource, ...] = ()
    ignore_paths: tuple[str, ...] = ()  # --ignore-path: never captured in a layer
    snapshot_mode: str = "redo"  # kaniko's full | redo | time, for the walk snapshotter
    single_snapshot: bool = False  # kaniko's --single-snapshot: one layer per stage (builder/image/squash.py)
    attest: AttestOptions = field(default_factory=AttestOptions)  # --sbom, --provenance
    # Stage trees stack on the layers unpacked once per machine under cache_dir (builder/engine/stage_tree.py).
    # The CLI sets it where RUN steps use overlay snapshots and the build has a mount namespace of its own.
    layer_store: bool = False
