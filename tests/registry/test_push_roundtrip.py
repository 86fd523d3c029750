"""Push handmade images to the real registry in every auth mode, read them back with skopeo and with wharfie."""

from __future__ import annotations

from dataclasses import replace

import pytest
from registry_helpers import HandmadeImage, build_image, skopeo_inspect

from oci import mediatypes as mt
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.errors import WharfieError
from oci.models import Descriptor, ImageConfig, Index, Manifest, Platform
from registry.errors import RegistryError
from registry.inspect import inspect_image
from registry.reference import parse_reference


@pytest.mark.parametrize("mode", ["open", "htpasswd", "token", "tls"])
def test_push_then_skopeo_and_pull_read_it_back(mode, request, store, make_client, tmp_path):
    registry = request.getfixturevalue(f"registry_{mode}")
    image = build_image(store, [{"hello.txt": b"hello " + mode.encode()}, {"etc/x": b"x" * 5000}],
                        labels={"mode": mode})
    client = make_client(registry)
    dest = parse_reference(f"{registry.host}/roundtrip/{mode}:v1")
    extra = dest.with_tag("v1-extra")
    digest = client.push_image([dest, extra], image.manifest_raw, image.media_type, image.config_raw, image.layers)
    assert digest == image.digest

    for ref in (dest, extra):
        seen = skopeo_inspect(registry, str(ref))
        assert seen["Digest"] == str(image.digest)
        assert seen["Labels"] == {"mode": mode}
        assert seen["Layers"] == [str(layer.digest) for layer in image.layers]

    resolved = client.resolve_image(dest, Platform("linux", "amd64"))
    assert resolved.manifest_digest == image.digest and resolved.config_raw == image.config_raw
    pulled = BlobStore(tmp_path / "pulled")
    for desc in resolved.manifest.layers:
        path = client.download_blob(dest, desc, pulled)
        assert path.read_bytes() == store.path(desc.digest).read_bytes()


def _platform_image(store, arch: str, variant: str | None) -> tuple[bytes, bytes, HandmadeImage]:
    """A handmade image whose config says `arch`: (manifest bytes, config bytes, the image's layers)."""
    image = build_image(store, [{"arch": arch.encode()}])
    config_raw = replace(ImageConfig.from_bytes(image.config_raw), architecture=arch, variant=variant).to_bytes()
    manifest = Manifest.from_bytes(image.manifest_raw)
    config_desc = replace(manifest.config, digest=Digest.of_bytes(config_raw), size=len(config_raw))
    return replace(manifest, config=config_desc).to_bytes(), config_raw, image


def test_index_resolves_to_the_platform_entry(registry_open, store, make_client):
    client = make_client(registry_open)
    repo = parse_reference(f"{registry_open.host}/roundtrip/multiarch")
    entries = []
    for arch, variant in (("amd64", None), ("arm64", "v8")):
        raw, config_raw, image = _platform_image(store, arch, variant)
        client.push_image([repo.with_tag(arch)], raw, mt.OCI_MANIFEST, config_raw, image.layers)
        entries.append(Descriptor(mt.OCI_MANIFEST, Digest.of_bytes(raw), len(raw),
                                  platform=Platform("linux", arch, variant)))
    index_digest = client.put_manifest(repo.with_tag("multi"), Index(mt.OCI_INDEX, tuple(entries)).to_bytes(),
                                       mt.OCI_INDEX)
    for entry in entries:
        resolved = client.resolve_image(repo.with_tag("multi"), entry.platform)
        assert resolved.manifest_digest == entry.digest and resolved.index_digest == index_digest
        assert resolved.config.architecture == entry.platform.architecture
    summary = inspect_image(client, repo.with_tag("multi"), Platform("linux", "arm64"))
    assert summary["Platforms"] == ["linux/amd64", "linux/arm64/v8"] and summary["Architecture"] == "arm64"
    seen = skopeo_inspect(registry_open, str(repo.with_tag("multi")), raw=True)
    assert [m["digest"] for m in seen["manifests"]] == [str(e.digest) for e in entries]
    with pytest.raises(WharfieError, match="no image for platform linux/s390x"):
        client.resolve_image(repo.with_tag("multi"), Platform("linux", "s390x"))


def test_manifest_by_digest_is_verified(registry_open, store, make_client):
    client = make_client(registry_open)
    image = build_image(store, [{"v": b"verified"}])
    ref = parse_reference(f"{registry_open.host}/roundtrip/verified:1")
    client.push_image([ref], image.manifest_raw, image.media_type, image.config_raw, image.layers)
    raw, media_type, digest = client.get_manifest(ref.with_digest(image.digest))
    assert (raw, media_type, digest) == (image.manifest_raw, image.media_type, image.digest)
    with pytest.raises(RegistryError) as err:  # a digest the registry does not have
        client.get_manifest(ref.with_digest(Digest.of_bytes(b"other")))
    assert err.value.has_code("MANIFEST_UNKNOWN") and not err.value.temporary
