"""What every stage of one build shares: options, the registry client, the blob store, the work dir."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from builder.dockerignore import IgnoreMatcher
from builder.layer_cache import LayerCache
from builder.options import BuildOptions
from oci.blobstore import BlobStore
from registry.client import RegistryClient

if TYPE_CHECKING:
    from builder.stage import StageResult

__all__ = ["BuildSession"]


@dataclass
class BuildSession:
    options: BuildOptions
    client: RegistryClient
    store: BlobStore
    work_dir: Path
    ignore: IgnoreMatcher
    cache: LayerCache
    results: dict[int, StageResult] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("wharfie"))
