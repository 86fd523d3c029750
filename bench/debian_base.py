"""The Debian bookworm minbase base image of the benchmarks: debootstrapped once per machine, pushed per run.

`debootstrap --variant=minbase bookworm` needs Debian's package mirror (reachable
here, as package registries are) and about a minute; the tree and a one-layer OCI
image layout of it are kept in the bench state dir, so later runs only push the
layout to their registry with skopeo.  ``/etc/resolv.conf`` and ``/etc/hostname``
(debootstrap copies the host's) are left out of the layer, as Debian's official
images leave them out: every builder supplies its own during RUN.

The layer is written in one streaming pass (GNU tar into gzip, both digests
hashed on the way), so the 120 MB tree is never held in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fixtures.baseimage import PATH_ENV, go_arch

__all__ = ["MIRROR", "DebianBase", "debootstrap_minbase", "ensure_debian_base", "minbase_layout", "push_layout"]

MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
_LEFT_OUT = ("./etc/resolv.conf", "./etc/hostname", "./var/cache/apt/archives/*.deb", "./var/lib/apt/lists/*_*")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DebianBase:
    """The debootstrapped tree and its OCI layout (``oci:LAYOUT:bookworm``)."""

    rootfs: Path
    layout: Path
    tag: str = SUITE

    @property
    def oci_ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"

    def layer_blob(self) -> Path:
        """The layout's one layer blob (the gzip tar of the tree)."""
        index = json.loads((self.layout / "index.json").read_text())
        manifest_digest = index["manifests"][0]["digest"]
        manifest = json.loads((self.layout / "blobs/sha256" / manifest_digest.removeprefix("sha256:")).read_text())
        layer_digest: str = manifest["layers"][0]["digest"]
        return self.layout / "blobs/sha256" / layer_digest.removeprefix("sha256:")


def debootstrap_minbase(state: Path) -> Path:
    """``STATE/minbase``: made once (into a ``.partial`` dir renamed when complete, so a killed run redoes it)."""
    rootfs = state / "minbase"
    if (rootfs / "etc" / "debian_version").exists():
        return rootfs
    if shutil.which("debootstrap") is None:
        raise SystemExit("debootstrap is missing: apt-get install debootstrap (scripts/bench.sh installs it)")
    partial = state / "minbase.partial"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(partial), MIRROR], check=True,
                   stdout=subprocess.DEVNULL)
    partial.rename(rootfs)
    return rootfs


def _write_blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


class _HashingWriter:
    """A file object that hashes what gzip writes into it (the compressed digest) on its way to disk."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("wb")
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _stream_layer(rootfs: Path, blobs: Path) -> tuple[str, str, int]:
    """Tar ``rootfs`` into a gzip blob under ``blobs``; return (digest, diff_id, size)."""
    partial = blobs / ".layer.partial"
    sink = _HashingWriter(partial)
    diff = hashlib.sha256()
    command = ["tar", "-C", str(rootfs), "--numeric-owner", "--xattrs", "--sort=name",
               *(f"--exclude={path}" for path in _LEFT_OUT), "-cf", "-", "."]
    with subprocess.Popen(command, stdout=subprocess.PIPE) as tar, \
            gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=1, mtime=0) as compressed:
        assert tar.stdout is not None
        while chunk := tar.stdout.read(_CHUNK):
            diff.update(chunk)
            compressed.write(chunk)
    sink.close()
    if tar.returncode != 0:
        partial.unlink()
        raise SystemExit(f"tar of {rootfs} failed ({tar.returncode})")
    digest = sink.sha256.hexdigest()
    size = partial.stat().st_size
    partial.rename(blobs / digest)
    return f"sha256:{digest}", f"sha256:{diff.hexdigest()}", size


def minbase_layout(state: Path, rootfs: Path) -> Path:
    """``STATE/minbase-layout``: the tree as a one-layer OCI image layout tagged ``bookworm`` (made once)."""
    layout = state / "minbase-layout"
    if (layout / "index.json").exists():
        return layout
    partial = state / "minbase-layout.partial"
    shutil.rmtree(partial, ignore_errors=True)
    blobs = partial / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer, diff_id, size = _stream_layer(rootfs, blobs)
    config = json.dumps({"architecture": go_arch(), "os": "linux", "config": {"Env": [PATH_ENV], "Cmd": ["bash"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                         "history": [{"created_by": f"debootstrap --variant=minbase {SUITE}"}]}).encode()
    config_digest = _write_blob(partial, config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                           "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": len(config)},
                           "layers": [{"mediaType": LAYER_TYPE, "digest": layer, "size": size}]}).encode()
    digest = _write_blob(partial, manifest)
    (partial / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": MANIFEST_TYPE, "digest": digest, "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": SUITE}}]}))
    (partial / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    partial.rename(layout)
    return layout


def ensure_debian_base(state: Path) -> DebianBase:
    """The minbase tree and layout in ``state``, made now if this machine has none yet."""
    state.mkdir(parents=True, exist_ok=True)
    rootfs = debootstrap_minbase(state)
    return DebianBase(rootfs, minbase_layout(state, rootfs))


def push_layout(oci_ref: str, reference: str) -> str:
    """Copy an OCI layout image to a plain-HTTP registry with skopeo; return ``reference``."""
    result = subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", oci_ref, f"docker://{reference}"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"skopeo copy {oci_ref} to {reference} failed: {result.stderr.strip()}")
    return reference
