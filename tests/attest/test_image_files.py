"""Reading package databases out of hostile layers: no symlink followed out of the image, sizes bounded."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from builder.attest.image_files import MAX_DATABASE, collect_package_files, is_package_file
from builder.attest.packages import catalog
from builder.image.state import ImageState
from oci import mediatypes as mt
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.layer import StoredLayer
from oci.models import Descriptor, ImageConfig

Entry = tuple[str, bytes | str | None, str]  # (name, content or link target, kind: file|dir|symlink|hardlink)


def _layer(store: BlobStore, entries: list[Entry]) -> StoredLayer:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, kind in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = str(content)
                tar.addfile(info)
            else:
                data = content if isinstance(content, bytes) else str(content).encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    blob = gzip.compress(tar_bytes, mtime=0)
    digest = store.put_bytes(blob)
    return StoredLayer(Descriptor(mt.OCI_LAYER_GZIP, digest, len(blob)), Digest.of_bytes(tar_bytes), store)


def _state(store: BlobStore, *layers: list[Entry]) -> ImageState:
    built = tuple(_layer(store, entries) for entries in layers)
    return ImageState(ImageConfig(diff_ids=tuple(layer.diff_id for layer in built)), built)


def _stanza(name: str, version: str = "1.0") -> str:
    return f"Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {version}\n\n"


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "store")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_symlinks_out_of_the_image_are_not_followed(store: BlobStore, work: Path, tmp_path: Path) -> None:
    # Host files an image would like us to read back into a document anyone can pull.
    canary = tmp_path / "host-secret"
    canary.mkdir()
    (canary / "METADATA").write_text("Name: leaked-from-host\nVersion: 6.6.6\n")
    (canary / "status").write_text(_stanza("leaked-deb"))
    (canary / "x.dist-info").mkdir()
    (canary / "x.dist-info" / "METADATA").write_text("Name: leaked-through-dir\nVersion: 6.6.6\n")
    state = _state(store, [
        ("var/lib/dpkg", None, "dir"),
        ("var/lib/dpkg/status", str(canary / "status"), "symlink"),
        ("usr/lib/python3/site-packages/evil-1.0.dist-info", None, "dir"),
        ("usr/lib/python3/site-packages/evil-1.0.dist-info/METADATA", str(canary / "METADATA"), "symlink"),
        ("usr/lib/python3/dist-packages", str(canary), "symlink"),  # a parent directory pointing out
        ("opt/venv/lib/python3.11/site-packages/ok-2.0.dist-info/METADATA", "Name: ok\nVersion: 2.0\n", "file"),
    ], [
        ("usr/lib/python3/dist-packages/x.dist-info/METADATA", "Name: inside\nVersion: 1\n", "file"),
    ])
    files = collect_package_files(state, work)
    names = {p.name for p in catalog(files)}
    # "inside" is in the image (wherever its symlinked parent puts it there); nothing is read from the host
    assert names == {"ok", "inside"}
    assert not any("leaked" in text for _, text in files.python + files.dpkg)
    assert any("var/lib/dpkg/status skipped: not a regular file" in w for w in files.warnings)
    assert (canary / "x.dist-info" / "METADATA").read_text().startswith("Name: leaked")  # the host is untouched
    assert not (canary / "inside").exists() and sorted(p.name for p in canary.iterdir()) == \
        ["METADATA", "status", "x.dist-info"]
    assert list(work.iterdir()) == [], "the scratch tree is removed"


def test_whiteouts_and_opaque_directories_remove_databases(store: BlobStore, work: Path) -> None:
    state = _state(store, [
        ("var/lib/dpkg/status", _stanza("gone-by-whiteout"), "file"),
        ("usr/lib/python3/site-packages/a-1.dist-info/METADATA", "Name: a\nVersion: 1\n", "file"),
        ("lib/apk/db/installed", "P:musl\nV:1.2\n\n", "file"),
    ], [
        ("var/lib/dpkg/.wh.status", "", "file"),
        ("usr/lib/python3/site-packages/.wh..wh..opq", "", "file"),
        ("usr/lib/python3/site-packages/b-2.dist-info/METADATA", "Name: b\nVersion: 2\n", "file"),
    ])
    names = {(p.ecosystem, p.name) for p in catalog(collect_package_files(state, work))}
    assert names == {("pypi", "b"), ("apk", "musl")}


def test_oversized_database_is_skipped_not_read(store: BlobStore, work: Path) -> None:
    huge = _stanza("huge") + " " * (MAX_DATABASE + 1)
    state = _state(store, [("var/lib/dpkg/status", huge, "file"),
                           ("lib/apk/db/installed", "P:small\nV:1\n\n", "file")])
    files = collect_package_files(state, work)
    assert files.dpkg == [] and any("more than the" in w for w in files.warnings)
    assert [p.name for p in catalog(files)] == ["small"]


def test_a_hard_link_out_of_the_selection_falls_back_to_the_whole_tree(store: BlobStore, work: Path) -> None:
    state = _state(store, [
        ("srv/meta", "Name: linked\nVersion: 3\n", "file"),
        ("usr/lib/python3/site-packages/linked-3.dist-info/METADATA", "srv/meta", "hardlink"),
    ])
    assert [p.name for p in catalog(collect_package_files(state, work))] == ["linked"]


def test_rpm_databases_are_found_not_read(store: BlobStore, work: Path) -> None:
    state = _state(store, [("var/lib/rpm/rpmdb.sqlite", "SQLite format 3", "file"),
                           ("usr/lib/sysimage/rpm/rpmdb.sqlite", "SQLite format 3", "file")])
    files = collect_package_files(state, work)
    assert files.rpm == ["usr/lib/sysimage/rpm/rpmdb.sqlite", "var/lib/rpm/rpmdb.sqlite"] and catalog(files) == []


@pytest.mark.parametrize(("path", "wanted"), [
    ("var/lib/dpkg/status", True),
    ("var/lib/dpkg/status-old", False),
    ("var/lib/dpkg/status.d/base-files", True),
    ("var/lib/dpkg/status.d/sub/x", False),
    ("usr/lib/python3.11/site-packages/pip-23.0.dist-info/METADATA", True),
    ("usr/lib/python3/dist-packages/x.egg-info/PKG-INFO", True),
    ("usr/lib/python3/dist-packages/x.egg-info", True),
    ("usr/lib/python3/dist-packages/x.dist-info/RECORD", False),
    ("home/site-packages-notes/METADATA", False),
    ("anything/.wh.status", True),
])
def test_which_entries_are_read(path: str, wanted: bool) -> None:
    assert is_package_file(path) is wanted
