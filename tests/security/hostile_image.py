"""A hostile base image: the busybox fixture plus one layer of the attacker's choosing, pushed with skopeo.

The layer is written here with tarfile alone, so it can hold what no build
would produce (`/dev` replaced by a symlink to a host directory, device
nodes, setuid files); skopeo, not wharfie, pushes it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fixtures.baseimage import MTIME, BusyboxLayout
from fixtures.registry import Registry

__all__ = ["Entry", "push_hostile_image"]


@dataclass(frozen=True)
class Entry:
    name: str
    kind: bytes  # tarfile.DIRTYPE, REGTYPE, SYMTYPE, BLKTYPE, CHRTYPE
    mode: int = 0o755
    content: bytes = b""
    link: str = ""
    device: tuple[int, int] = (0, 0)


def _layer(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type, info.mode, info.linkname, info.mtime = entry.kind, entry.mode, entry.link, MTIME
            info.size = len(entry.content)
            info.devmajor, info.devminor = entry.device
            tar.addfile(info, io.BytesIO(entry.content) if entry.content else None)
    return buffer.getvalue()


def _blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


def _read(layout: Path, digest: str) -> dict:
    return json.loads((layout / "blobs/sha256" / digest.split(":", 1)[1]).read_text())


def push_hostile_image(busybox: BusyboxLayout, registry: Registry, repo: str, entries: list[Entry]) -> str:
    """busybox + a layer of `entries`, pushed as REPO:latest; returns the reference."""
    reference = f"{registry.host}/{repo}:latest"
    with tempfile.TemporaryDirectory(prefix="wharfie-hostile-") as tmp:
        layout = Path(tmp) / "layout"
        shutil.copytree(busybox.path, layout)
        tar = _layer(entries)
        compressed = gzip.compress(tar, mtime=0)
        layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _blob(layout, compressed),
                 "size": len(compressed)}
        index = json.loads((layout / "index.json").read_text())
        manifest = _read(layout, index["manifests"][0]["digest"])
        config = _read(layout, manifest["config"]["digest"])
        config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(tar).hexdigest())
        config["history"].append({"created": config["created"], "created_by": "hostile layer"})
        config_bytes = json.dumps(config).encode()
        manifest["config"] = {**manifest["config"], "digest": _blob(layout, config_bytes), "size": len(config_bytes)}
        manifest["layers"].append(layer)
        manifest_bytes = json.dumps(manifest).encode()
        index["manifests"][0] = {**index["manifests"][0], "digest": _blob(layout, manifest_bytes),
                                 "size": len(manifest_bytes)}
        (layout / "index.json").write_text(json.dumps(index))
        result = subprocess.run(["skopeo", "copy", "--quiet", *registry.skopeo_flags("dest"),
                                 f"oci:{layout}:{busybox.tag}", f"docker://{reference}"],
                                capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"skopeo copy to {reference} failed: {result.stderr.strip()}")
    return reference
