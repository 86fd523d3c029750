"""Helpers of the GitLab API tests: push distinct handmade images to the real registry, read its tags back."""

from __future__ import annotations

import httpx
from registry_helpers import HandmadeImage, build_image, options_for

from fixtures.registry import Registry
from oci.blobstore import BlobStore
from registry.client import RegistryClient
from registry.reference import parse_reference


def push_tags(registry: Registry, store: BlobStore, repository: str, tags: list[str], *,
              created: str = "2024-01-01T00:00:00Z") -> dict[str, HandmadeImage]:
    """Push one image of its own per tag to ``registry/repository`` (config dated `created`)."""
    images = {}
    with RegistryClient(options_for(registry)) as client:
        for tag in tags:
            image = build_image(store, [{f"{repository}-{tag}": tag.encode()}], created=created)
            client.push_image([parse_reference(f"{registry.host}/{repository}:{tag}")], image.manifest_raw,
                              image.media_type, image.config_raw, image.layers)
            images[tag] = image
    return images


def registry_tags(registry: Registry, repository: str) -> list[str]:
    """The tags the registry itself lists (not GitLab's API)."""
    response = httpx.get(f"{registry.url}/v2/{repository}/tags/list")
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return sorted(response.json().get("tags") or [])
