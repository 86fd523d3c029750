"""Each base layer unpacked once per machine, kept in `--cache-dir` as an overlay lower directory.

A stage FROM an image then starts at once: its rootfs is an overlay of
these directories (builder/execution/stacked_rootfs.py) instead of a fresh
extraction, as containerd's and containers/storage's overlay drivers do.

An entry is named by the layer's chain ID (the OCI image spec's
``ChainID``: the diff_ids of the layer and of every layer under it), not by
its diff_id alone: a layer that does not list a parent directory leaves
that directory's metadata to the layers under it, so what its directory
must hold depends on them. Entries are written in overlayfs's own format,
the same as an upper dir: a deletion is a 0,0 character device, an
emptied directory carries the opaque xattr (``trusted.overlay.opaque``,
or ``user.overlay.opaque`` for a store used from a user namespace, hence
one store per dialect). The bottom layer is extracted straight into its
directory; each layer above it through an overlay of the entries under
it, so the kernel itself turns whiteouts into that format.

Safe to share between concurrent builds: an entry is made under an
exclusive `flock` of its own, in a temporary directory renamed into place
when complete, so a reader sees a whole entry or none. The uncompressed
bytes are checked against the diff_id while they are unpacked: an entry is
shared across builds, so a layer whose content does not match its config
must never be published under another layer's name. Nothing writes to an
entry afterwards: it is only ever an overlay lower dir, read-only by
construction.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from layers.compress import open_decompressed
from layers.extract import extract_layer
from layers.overlay import mount_overlay, unmount
from layers.spread import spread_subdirectories
from oci.digest import CHUNK, Digest, VerifyingReader
from oci.layer import Layer

__all__ = ["UnpackedStore", "chain_ids"]

log = logging.getLogger(__name__)


def chain_ids(diff_ids: Sequence[Digest]) -> list[Digest]:
    """The OCI ChainID of each layer: its diff_id for the first, sha256("PARENT DIFF_ID") above it."""
    chains: list[Digest] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            text = f"{chains[-1]} {diff_id}".encode()
            chains.append(Digest("sha256", hashlib.sha256(text).hexdigest()))
    return chains


class UnpackedStore:
    """`root/<dialect>/<chain id hex>`: unpacked layers in overlay format, made once, then only read."""

    def __init__(self, root: Path, *, userxattr: bool) -> None:
        self.userxattr = userxattr
        # 0700: a private base image's files must not be readable by the runner's other users. Steps
        # still read them, as any user: overlayfs reaches its lower dirs with the mounter's rights.
        Path(root).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root = Path(root) / ("user" if userxattr else "trusted")
        self.root.mkdir(mode=0o700, exist_ok=True)
        spread_subdirectories(self.root)  # each layer unpacked away from the trees builds just deleted

    def lower_dirs(self, layers: Sequence[Layer]) -> list[Path]:
        """The entry of each of `layers` (bottom first), unpacking those this machine does not have yet."""
        chains = chain_ids([layer.diff_id for layer in layers])
        _download([layer for layer, chain in zip(layers, chains) if not (self.root / chain.hex).is_dir()])
        dirs: list[Path] = []
        for layer, chain in zip(layers, chains):
            path = self.root / chain.hex
            if not path.is_dir():
                with self._locked(chain):
                    if not path.is_dir():
                        self._unpack(layer, dirs, path)
            dirs.append(path)
        return dirs

    @contextmanager
    def _locked(self, chain: Digest) -> Iterator[None]:
        with open(self.root / f".{chain.hex}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _unpack(self, layer: Layer, below: list[Path], final: Path) -> None:
        log.info("unpacking %s into the layer store", layer.digest.short)
        scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.root))
        try:
            upper = scratch / "upper"
            upper.mkdir()
            if not below:
                _extract_verified(layer, upper)
            else:  # through an overlay of the layers under it: the kernel writes overlay's format
                work, merged = scratch / "work", scratch / "merged"
                work.mkdir()
                merged.mkdir()
                mount_overlay(list(reversed(below)), upper, work, merged, userxattr=self.userxattr)
                try:
                    _extract_verified(layer, merged)
                finally:
                    unmount(merged)
            os.rename(upper, final)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _download(layers: Sequence[Layer]) -> None:
    """Fetch the layers to unpack several at once (unpacking stays in order: each needs those under it)."""
    if len(layers) > 1:
        with ThreadPoolExecutor(max_workers=min(4, len(layers)), thread_name_prefix="fetch") as pool:
            for future in [pool.submit(lambda layer: layer.open_compressed().close(), layer) for layer in layers]:
                future.result()


def _extract_verified(layer: Layer, root: Path) -> None:
    """Extract `layer` onto `root`, its uncompressed bytes checked against its diff_id to their end."""
    with layer.open_compressed() as blob, open_decompressed(blob) as plain:
        reader = VerifyingReader(plain, layer.diff_id, what=f"layer {layer.digest}: its uncompressed content")
        extract_layer(reader, root, compression="none", label=f"layer {layer.digest.short}")  # type: ignore[arg-type]
        while reader.read(CHUNK):  # what follows the tar's end counts too
            pass
