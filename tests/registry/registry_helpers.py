"""Test helpers: handmade images, client options for a fixture registry, skopeo read-back."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
from dataclasses import dataclass
from typing import Any

from fixtures.proxy import FaultProxy
from fixtures.registry import Registry
from oci import mediatypes as mt
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.layer import StoredLayer
from oci.models import Descriptor, ImageConfig, Manifest
from registry.dockerconfig import Credentials
from registry.options import RegistryOptions


@dataclass(frozen=True)
class HandmadeImage:
    manifest_raw: bytes
    media_type: str
    config_raw: bytes
    layers: tuple[StoredLayer, ...]

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.manifest_raw)


def layer_bytes(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """(gzip blob, uncompressed tar) of a layer holding `files`, reproducibly."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 946684800
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), tar_bytes


def build_image(store: BlobStore, layer_files: list[dict[str, bytes]], *, oci: bool = True,
                labels: dict[str, str] | None = None, created: str = "2024-01-01T00:00:00Z") -> HandmadeImage:
    layers = []
    for files in layer_files:
        blob, tar_bytes = layer_bytes(files)
        digest = store.put_bytes(blob)
        media = mt.OCI_LAYER_GZIP if oci else mt.DOCKER_LAYER_GZIP
        layers.append(StoredLayer(Descriptor(media, digest, len(blob)), Digest.of_bytes(tar_bytes), store))
    config = ImageConfig(created=created, diff_ids=tuple(layer.diff_id for layer in layers))
    if labels:
        config = config.with_container(labels=labels)
    config_raw = config.to_bytes()
    manifest = Manifest(
        media_type=mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
        config=Descriptor(mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG, Digest.of_bytes(config_raw), len(config_raw)),
        layers=tuple(layer.descriptor for layer in layers),
    )
    return HandmadeImage(manifest.to_bytes(), manifest.media_type, config_raw, tuple(layers))


def options_for(registry: Registry, *, username: str | None = None, password: str | None = None,
                via: FaultProxy | None = None, **overrides: Any) -> RegistryOptions:
    """Options reaching `registry` (its CA, its scheme), or the proxy `via` in front of it, as `username`."""
    user = username if username is not None else registry.username
    secret = password if password is not None else registry.password
    host = via.host if via is not None else registry.host
    creds = {host: Credentials(user, secret)} if user is not None and secret is not None else {}
    kwargs: dict[str, Any] = {
        "insecure_registries": frozenset({host}) if (via is not None or not registry.tls) else frozenset(),
        "ca_files": {host: str(registry.ca_file)} if registry.ca_file and via is None else {},
        "credentials": creds, "use_docker_config": False, "backoff_base": 0.05,
    }
    kwargs.update(overrides)
    return RegistryOptions(**kwargs)


def skopeo_inspect(registry: Registry, reference: str, *, raw: bool = False, creds: str | None = None) -> Any:
    flags = ["--tls-verify=false"] if registry.tls is None else [f"--cert-dir={registry.cert_dir}"]
    if creds is None and registry.username is not None:
        creds = f"{registry.username}:{registry.password}"
    if creds is not None:
        flags.append(f"--creds={creds}")
    if raw:
        flags.append("--raw")
    result = subprocess.run(["skopeo", "inspect", *flags, f"docker://{reference}"], capture_output=True, text=True,
                            timeout=60, check=False, env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
