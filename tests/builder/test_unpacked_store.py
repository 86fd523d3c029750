"""The unpacked-layer store: each layer unpacked once, stacked it reads as the layers extracted in order.

Every stacked view is compared with `extract_layer` applied layer after
layer onto a plain directory (the way builds extracted bases before), down
to modes, owners, contents and directory times.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from builder.image.unpacked_store import UnpackedStore, chain_ids
from fixtures.readback import tree_snapshot
from layers.extract import extract_layer
from layers.overlay import mount_overlay, unmount
from oci import mediatypes as mt
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.errors import DigestMismatchError
from oci.layer import StoredLayer
from oci.models import Descriptor

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay mounts need root")

Entry = tuple[str, str, int, bytes | str]  # (name, kind: file|dir|link|hard, mode, content or target)


def _layer(store: BlobStore, entries: list[Entry], *, diff_id: Digest | None = None) -> StoredLayer:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, mode, data in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime, info.uid, info.gid = mode, 1_000_000_000 + len(name), 7, 8
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                tar.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
                tar.addfile(info)
            else:
                assert isinstance(data, bytes)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    data = raw.getvalue()
    digest = store.put_bytes(data)
    return StoredLayer(Descriptor(mt.OCI_LAYER, digest, len(data)), diff_id or Digest.of_bytes(data), store)


BASE: list[Entry] = [
    ("etc", "dir", 0o755, b""), ("etc/passwd", "file", 0o644, b"root:x:0:0\n"),
    ("etc/group", "file", 0o644, b"root:x:0:\n"),
    ("opt", "dir", 0o750, b""), ("opt/app", "dir", 0o755, b""), ("opt/app/one", "file", 0o600, b"1"),
    ("opt/app/two", "file", 0o644, b"2"), ("opt/keep", "file", 0o644, b"k"),
    ("srv", "dir", 0o700, b""), ("srv/data", "file", 0o644, b"d"), ("srv/hard", "hard", 0o644, "srv/data"),
    ("bin", "dir", 0o755, b""), ("bin/sh", "link", 0o777, "busybox"),
]
ABOVE: list[Entry] = [
    ("etc/.wh.group", "file", 0o644, b""),  # deleted
    ("opt/app/.wh..wh..opq", "file", 0o644, b""), ("opt/app/three", "file", 0o644, b"3"),  # emptied, refilled
    ("srv/new", "file", 0o640, b"n"),  # srv/ itself not listed: it keeps the mode of the layer below
    ("bin/sh", "file", 0o755, b"#!real"),  # a symlink replaced by a file
    ("var", "dir", 0o755, b""), ("var/log", "dir", 0o1777, b""),
]
TOP: list[Entry] = [
    (".wh.srv", "file", 0o644, b""), ("srv", "dir", 0o711, b""), ("srv/fresh", "file", 0o644, b"f"),  # dir replaced
    ("var/.wh.log", "file", 0o644, b""),
]


@contextmanager
def _stacked(dirs: list[Path], at: Path) -> Iterator[Path]:
    at.mkdir()
    if len(dirs) == 1:
        yield dirs[0]
        return
    mount_overlay(list(reversed(dirs)), None, None, at, userxattr=False)
    try:
        yield at
    finally:
        unmount(at)


def _extracted(layers: list[StoredLayer], at: Path) -> Path:
    for layer in layers:
        with layer.open_compressed() as blob:
            extract_layer(blob, at)
    return at


def test_chain_ids_follow_the_image_spec() -> None:
    a, b, c = (Digest.of_bytes(x) for x in (b"a", b"b", b"c"))
    chains = chain_ids([a, b, c])
    assert chains[0] == a
    assert chains[1] == Digest.of_bytes(f"{a} {b}".encode())
    assert chains[2] == Digest.of_bytes(f"{chains[1]} {c}".encode())


def test_stacked_entries_read_as_the_layers_extracted_in_order(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    layers = [_layer(blobs, BASE), _layer(blobs, ABOVE), _layer(blobs, TOP)]
    dirs = UnpackedStore(tmp_path / "store", userxattr=False).lower_dirs(layers)
    assert [d.name for d in dirs] == [c.hex for c in chain_ids([layer.diff_id for layer in layers])]
    # Extracted trees keep the layers' mtimes: the views must show the same ones.
    expected = tree_snapshot(_extracted(layers, tmp_path / "plain"), mtime=True)
    for count in (1, 2, 3):  # every prefix of the stack is an image too
        plain = _extracted(layers[:count], tmp_path / f"plain{count}")
        with _stacked(dirs[:count], tmp_path / f"view{count}") as view:
            assert tree_snapshot(view, mtime=True) == tree_snapshot(plain, mtime=True)
    with _stacked(dirs, tmp_path / "view") as view:
        assert tree_snapshot(view, mtime=True) == expected
    assert "srv/data" not in expected and expected["srv"][1] == 0o711 and "var/log" not in expected


def test_an_entry_is_unpacked_once_and_reused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    blobs = BlobStore(tmp_path / "blobs")
    layers = [_layer(blobs, BASE), _layer(blobs, ABOVE)]
    first = UnpackedStore(tmp_path / "store", userxattr=False).lower_dirs(layers)
    inodes = [d.stat().st_ino for d in first]
    caplog.clear()
    again = UnpackedStore(tmp_path / "store", userxattr=False).lower_dirs(layers)
    assert again == first and [d.stat().st_ino for d in again] == inodes
    assert "unpacking" not in caplog.text
    # A base sharing the bottom layer only unpacks what it adds.
    other = UnpackedStore(tmp_path / "store", userxattr=False).lower_dirs([layers[0], _layer(blobs, TOP)])
    assert other[0] == first[0] and other[1] not in first
    assert caplog.text.count("unpacking") == 1


def test_a_layer_whose_content_is_not_its_diff_id_is_never_published(tmp_path: Path) -> None:
    """An entry is shared by later builds: a layer lying about its diff_id must not poison another's name."""
    blobs = BlobStore(tmp_path / "blobs")
    honest = _layer(blobs, BASE)
    liar = _layer(blobs, [("etc", "dir", 0o755, b""), ("etc/passwd", "file", 0o644, b"evil::0:0\n")],
                  diff_id=honest.diff_id)
    store = UnpackedStore(tmp_path / "store", userxattr=False)
    with pytest.raises(DigestMismatchError):
        store.lower_dirs([liar])
    assert [p.name for p in store.root.iterdir() if not p.name.startswith(".")] == []
    [entry] = store.lower_dirs([honest])
    assert (entry / "etc/passwd").read_bytes() == b"root:x:0:0\n"


def test_concurrent_builds_unpack_a_layer_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    blobs = BlobStore(tmp_path / "blobs")
    layers = [_layer(blobs, BASE), _layer(blobs, ABOVE)]
    results: list[list[Path]] = []
    start = threading.Barrier(3)

    def build() -> None:
        start.wait()
        results.append(UnpackedStore(tmp_path / "store", userxattr=False).lower_dirs(layers))

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and results[0] == results[1] == results[2]
    assert caplog.text.count("unpacking") == 2  # each layer once, whoever came first
    assert not [p for p in (tmp_path / "store" / "trusted").iterdir() if p.name.startswith(".unpack-")]
