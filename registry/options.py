"""What a registry client may be told: one frozen value, built by the CLI (or a test) and passed once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from registry.dockerconfig import Credentials

__all__ = ["DEFAULT_CHUNK_SIZE", "DEFAULT_CHUNK_THRESHOLD", "RegistryOptions"]

# Blobs above the threshold go up in PATCH chunks, so a dropped connection
# costs one chunk, not the whole layer; below it one PUT is fewer round trips.
DEFAULT_CHUNK_THRESHOLD = 64 << 20
DEFAULT_CHUNK_SIZE = 16 << 20


@dataclass(frozen=True)
class RegistryOptions:
    """Transport, TLS, credentials and push tuning for every registry a client talks to.

    Hosts are written as in references (``host:port``; ``docker.io`` for Docker Hub).
    `mirrors` are docker's ``registry-mirrors``: ``HOST[:PORT][/PATH]`` tried, in
    order, before Docker Hub for reads, which fall back to Docker Hub itself.
    `registry_maps` does the same for any registry (kaniko's ``--registry-map``):
    reads of a host's images try its mirrors first; with
    `skip_default_registry_fallback` they never fall back to the host itself.
    `pull_insecure` and `pull_skip_tls_verify` (kaniko's ``--insecure-pull``,
    ``--skip-tls-verify-pull``) relax only the registries the build does not push
    to (not in `push_registries`): plain HTTP after HTTPS fails, no certificate check.
    """

    insecure_registries: frozenset[str] = frozenset()
    skip_tls_verify: bool = False
    ca_files: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, Credentials] = field(default_factory=dict)
    push_concurrency: int = 4
    retries: int = 3
    chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD
    chunk_size: int = DEFAULT_CHUNK_SIZE
    mirrors: tuple[str, ...] = ()
    timeout: float = 60.0
    connect_timeout: float = 10.0
    backoff_base: float = 0.5
    user_agent: str = "wharfie/0.1"
    use_docker_config: bool = True
    """Read docker's config.json and GitLab CI variables for credentials (tests turn this off)."""
    skip_tls_verify_registries: frozenset[str] = frozenset()
    client_certificates: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """HOST -> (certificate file, key file) presented for mutual TLS."""
    registry_maps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    skip_default_registry_fallback: bool = False
    pull_insecure: bool = False
    pull_skip_tls_verify: bool = False
    push_registries: frozenset[str] = frozenset()
