"""The commands around a build's attestations and multi-platform images: sbom, provenance, manifest create|inspect.

`wharfie sbom REF` and `wharfie provenance REF` find the newest artifact of
their type attached to REF's image (for --platform when REF is an index) and
print it; `wharfie manifest create DEST SRC...` joins per-architecture images
into one index (registry/manifest_lists.py), `wharfie manifest inspect REF`
prints a manifest or index. Flags and client set-up are the registry
commands' (`registry_command`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from builder.cli.registry_commands import _client, registry_command
from oci import mediatypes as mt
from oci.blobstore import BlobStore
from oci.errors import WharfieError
from oci.models import Index, Platform, host_platform
from registry.client import RegistryClient
from registry.manifest_lists import create_index
from registry.reference import Reference, parse_reference
from registry.referrers import fetch_artifact, list_referrers, newest

__all__ = ["ATTEST_COMMANDS", "manifest", "provenance", "sbom"]


def _attached(client: RegistryClient, ref: Reference, platform: str | None, artifact_type: str, what: str) -> bytes:
    """The payload of the newest `artifact_type` artifact whose subject is `ref`'s image."""
    resolved = client.resolve_image(ref, Platform.parse(platform) if platform else host_platform())
    digest = resolved.manifest_digest
    found = newest(list_referrers(client.session, ref, digest, artifact_type))
    if found is None:
        raise WharfieError(f"no {what} is attached to {ref.repo_ref.with_digest(digest)} "
                           "(build it with --sbom / --provenance)")
    manifest, payload = fetch_artifact(client.session, ref, found)
    if manifest.subject is None or manifest.subject.digest != digest:
        raise WharfieError(f"{ref.repo_ref.with_digest(found.digest)} is listed as a referrer of {digest.short} "
                           "but names another subject")
    return payload


def _print_json(payload: bytes, what: str) -> None:
    try:
        document = json.loads(payload)
    except ValueError:
        raise WharfieError(f"the attached {what} is not JSON") from None
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@click.command()
@click.argument("reference")
@click.option("--platform", help="os/arch[/variant] to pick from an index (default: this machine's).")
@registry_command
def sbom(reference: str, platform: str | None, **kw: Any) -> None:
    """Print the SPDX SBOM attached to REFERENCE's image."""
    ref = parse_reference(reference)
    with _client(kw) as client:
        payload = _attached(client, ref, platform, mt.SPDX_JSON, "SBOM")
    _print_json(payload, "SBOM")


@click.command()
@click.argument("reference")
@click.option("--platform", help="os/arch[/variant] to pick from an index (default: this machine's).")
@registry_command
def provenance(reference: str, platform: str | None, **kw: Any) -> None:
    """Print the SLSA provenance (an in-toto statement) attached to REFERENCE's image."""
    ref = parse_reference(reference)
    with _client(kw) as client:
        payload = _attached(client, ref, platform, mt.IN_TOTO_JSON, "provenance")
    _print_json(payload, "provenance")


@click.group()
def manifest() -> None:
    """Multi-platform images: join per-architecture images into an index, inspect one."""


@manifest.command("create")
@click.argument("destination")
@click.argument("sources", nargs=-1, required=True)
@click.option("--format", "format_", type=click.Choice(["oci", "docker"]), default="oci", show_default=True,
              help="An OCI image index, or a Docker manifest list.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Local blob cache (default ~/.cache/wharfie).")
@registry_command
def manifest_create(destination: str, sources: tuple[str, ...], format_: str, cache_dir: str | None,
                    **kw: Any) -> None:
    """Push an index of SOURCES (one image per platform, read from each config) as DESTINATION."""
    dest = parse_reference(destination)
    refs = [parse_reference(source) for source in sources]
    from builder.engine.options import default_cache_dir  # here: the engine need not load for --help

    store = BlobStore(Path(cache_dir) if cache_dir else default_cache_dir())
    with _client(kw) as client:
        raw, _media_type, digest = create_index(client.session, dest, refs, docker=format_ == "docker", store=store,
                                                 progress=client.progress)
    platforms = ", ".join(str(entry.platform) for entry in Index.from_bytes(raw).manifests)
    target = dest if dest.tag or dest.digest else dest.with_tag("latest")
    click.echo(f"pushed {target}@{digest} ({platforms})")


@manifest.command("inspect")
@click.argument("reference")
@registry_command
def manifest_inspect(reference: str, **kw: Any) -> None:
    """Print REFERENCE's manifest or index as JSON (as `docker manifest inspect` does)."""
    ref = parse_reference(reference)
    with _client(kw) as client:
        raw, _media_type, _digest = client.get_manifest(ref)
    _print_json(raw, "manifest")


ATTEST_COMMANDS: list[click.Command] = [sbom, provenance, manifest]
