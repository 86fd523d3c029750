"""`wharfie inspect`: what an image reference names, without pulling its layers.

The summary follows `skopeo inspect`'s shape (digest, platform, config
fields, layers and sizes) plus the platforms an index offers and the artifacts attached to the image
(OCI referrers: SBOMs, provenance), so users can
compare the two tools' answers directly.
"""

from __future__ import annotations

import logging
from typing import Any

from oci import mediatypes as mt
from oci.digest import Digest
from oci.models import Platform
from registry.client import RegistryClient
from registry.decode import decode_index
from registry.errors import RegistryError
from registry.reference import Reference
from registry.referrers import list_referrers

log = logging.getLogger(__name__)

__all__ = ["inspect_image"]


def inspect_image(client: RegistryClient, ref: Reference, platform: Platform) -> dict[str, Any]:
    """A JSON-ready summary of `ref`; an index is summarised with its `platform` entry."""
    raw, media_type, digest = client.get_manifest(ref)
    out: dict[str, Any] = {"Name": ref.name, "Tag": ref.tag, "Digest": str(digest), "MediaType": media_type}
    if mt.is_index(media_type):
        index = decode_index(raw, media_type, what=f"index of {ref}")
        out["Platforms"] = [str(d.platform) for d in index.manifests if d.platform]
    resolved = client.resolve_image(ref.with_digest(digest), platform)
    config = resolved.config
    if resolved.manifest_digest != digest:
        out["PlatformDigest"] = str(resolved.manifest_digest)
        out["PlatformMediaType"] = resolved.media_type
    layers = resolved.manifest.layers
    out.update({
        "Created": config.created,
        "Architecture": config.architecture,
        "Os": config.os,
        "Variant": config.variant,
        "Author": config.author,
        "User": config.config.user,
        "Env": list(config.config.env or ()),
        "Entrypoint": list(config.config.entrypoint) if config.config.entrypoint is not None else None,
        "Cmd": list(config.config.cmd) if config.config.cmd is not None else None,
        "WorkingDir": config.config.working_dir,
        "ExposedPorts": sorted(config.config.exposed_ports or {}),
        "Labels": config.config.labels or {},
        "Config": {"Digest": str(resolved.manifest.config.digest), "Size": resolved.manifest.config.size},
        "Layers": [{"Digest": str(d.digest), "Size": d.size, "MediaType": d.media_type} for d in layers],
        "Size": sum(d.size for d in layers) + resolved.manifest.config.size,
        "History": len(config.history),
        "Referrers": _referrers(client, ref, resolved.manifest_digest),
    })
    return out


def _referrers(client: RegistryClient, ref: Reference, digest: Digest) -> list[dict[str, Any]]:
    """The artifacts attached to the image (SBOMs, provenance, signatures): OCI referrers."""
    try:
        found = list_referrers(client.session, ref, digest)
    except RegistryError as exc:  # a registry that will not say is not a reason to fail the inspection
        log.debug("referrers of %s: %s", ref, exc)
        return []
    return [{"Digest": str(d.digest), "ArtifactType": d.artifact_type, "MediaType": d.media_type, "Size": d.size,
             "Created": (d.annotations or {}).get("org.opencontainers.image.created")} for d in found]
