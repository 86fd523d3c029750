"""The tar writer: determinism, formats readable by other tools, one-pass digests."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from layertools import E, diff_states, read_entries, tree_state

from layers.changes import Change
from layers.compress import open_decompressed
from layers.extract import extract_layer
from layers.writer import plan_entries, write_layer, write_tree_layer
from oci import mediatypes as mt
from oci.blobstore import BlobStore
from oci.digest import Digest, sha256_stream
from oci.errors import UnsafePathError, WharfieError
from oci.models import Descriptor, ImageConfig, Index, Manifest

EMPTY_TAR_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def sample_tree(root: Path, mtime: int) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "bin/busybox").write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    for name in ("sh", "ls", "cat"):
        os.link(root / "bin/busybox", root / "bin" / name)
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text("NAME=test\n")
    os.symlink("../bin/busybox", root / "etc/shell")
    (root / "long" / ("x" * 120)).mkdir(parents=True)
    (root / "long" / ("x" * 120) / ("y" * 120)).write_text("deep")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)


def test_layer_digests_match_the_blob(tmp_path: Path, store: BlobStore) -> None:
    sample_tree(tmp_path / "t", 1_700_000_000)
    layer = write_tree_layer(tmp_path / "t", store)
    with layer.open_compressed() as blob:
        assert sha256_stream(blob) == (layer.digest, layer.size)
    with layer.open_compressed() as blob, open_decompressed(blob) as tar:
        assert sha256_stream(tar)[0] == layer.diff_id
    assert layer.media_type == mt.OCI_LAYER_GZIP


def test_hardlinks_are_stored_once(tmp_path: Path, store: BlobStore) -> None:
    sample_tree(tmp_path / "t", 1_700_000_000)
    entries = read_entries(write_tree_layer(tmp_path / "t", store))
    bin_entries = [e for e in entries if e.name.startswith("bin/")]
    assert bin_entries == [E("bin/busybox", size=10244, mode=0o644), E("bin/cat", "h", link="bin/busybox", mode=0o644),
                           E("bin/ls", "h", link="bin/busybox", mode=0o644),
                           E("bin/sh", "h", link="bin/busybox", mode=0o644)]


def test_same_tree_different_mtimes_same_digest_with_epoch(tmp_path: Path, store: BlobStore) -> None:
    sample_tree(tmp_path / "one", 1_700_000_000)
    sample_tree(tmp_path / "two", 1_800_000_000)
    first = write_tree_layer(tmp_path / "one", store, epoch=1_600_000_000)
    second = write_tree_layer(tmp_path / "two", store, epoch=1_600_000_000)
    assert (first.digest, first.diff_id) == (second.digest, second.diff_id)
    without_epoch = write_tree_layer(tmp_path / "two", store)
    assert without_epoch.diff_id != first.diff_id


def test_epoch_only_clamps_later_mtimes(tmp_path: Path, store: BlobStore) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t/old").write_text("o")
    (tmp_path / "t/new").write_text("n")
    os.utime(tmp_path / "t/old", (1_000, 1_000))
    os.utime(tmp_path / "t/new", (2_000_000_000, 2_000_000_000))
    layer = write_tree_layer(tmp_path / "t", store, epoch=1_500_000_000, compression="none")
    with layer.open_compressed() as blob:
        import tarfile

        with tarfile.open(fileobj=blob, mode="r|") as tar:
            mtimes = {m.name: m.mtime for m in tar}
    assert mtimes == {"new": 1_500_000_000, "old": 1_000}


def test_gzip_header_has_no_name_and_no_mtime(tmp_path: Path, store: BlobStore) -> None:
    sample_tree(tmp_path / "t", 1_700_000_000)
    layer = write_tree_layer(tmp_path / "t", store)
    head = store.path(layer.digest).read_bytes()[:10]
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] == 0, "no FNAME/FCOMMENT/FEXTRA flags"
    assert head[4:8] == b"\0\0\0\0", "mtime zero"


@pytest.mark.parametrize("compression,media_type", [("gzip", mt.OCI_LAYER_GZIP), ("zstd", mt.OCI_LAYER_ZSTD),
                                                    ("none", mt.OCI_LAYER)])
def test_compressions_roundtrip(compression: str, media_type: str, tmp_path: Path, store: BlobStore) -> None:
    sample_tree(tmp_path / "t", 1_700_000_000)
    layer = write_tree_layer(tmp_path / "t", store, compression=compression)
    assert layer.media_type == media_type
    out = tmp_path / "out"
    out.mkdir()
    with layer.open_compressed() as blob:
        extract_layer(blob, out)
    assert diff_states(tree_state(out), tree_state(tmp_path / "t")) == []


def test_docker_media_type(tmp_path: Path, store: BlobStore) -> None:
    (tmp_path / "t").mkdir()
    assert write_tree_layer(tmp_path / "t", store, oci=False).media_type == mt.DOCKER_LAYER_GZIP


def test_gzip_levels_all_readable_by_gzip(tmp_path: Path, store: BlobStore) -> None:
    sample_tree(tmp_path / "t", 1_700_000_000)
    diff_ids = set()
    for level in (0, 1, 4, 6, 9):
        layer = write_tree_layer(tmp_path / "t", store, level=level)
        tar = subprocess.run(["gzip", "-dc", str(store.path(layer.digest))], check=True, capture_output=True).stdout
        assert Digest.of_bytes(tar) == layer.diff_id
        diff_ids.add(layer.diff_id)
    assert len(diff_ids) == 1


def test_tar_lists_the_layer(tmp_path: Path, store: BlobStore) -> None:
    sample_tree(tmp_path / "t", 1_700_000_000)
    layer = write_tree_layer(tmp_path / "t", store)
    listing = subprocess.run(["tar", "-tzf", str(store.path(layer.digest))], check=True, capture_output=True,
                             text=True).stdout.split("\n")
    assert listing[:6] == ["bin/", "bin/busybox", "bin/cat", "bin/ls", "bin/sh", "etc/"]
    assert "long/" + "x" * 120 + "/" + "y" * 120 in listing


def test_empty_layer_is_the_well_known_empty_tar(tmp_path: Path, store: BlobStore) -> None:
    layer = write_layer([], tmp_path, store)
    assert str(layer.diff_id) == EMPTY_TAR_DIFF_ID
    subprocess.run(["tar", "-tzf", str(store.path(layer.digest))], check=True)


def test_whiteouts_and_opaque_markers(tmp_path: Path, store: BlobStore) -> None:
    (tmp_path / "t/a/keep").mkdir(parents=True)
    (tmp_path / "t/a/keep/new").write_text("n")
    changes = [Change("a/gone", "delete"), Change("a/keep", "opaque"), Change("a/keep/new", "add"),
               Change("top", "delete")]
    entries = [(e.name, e.type) for e in read_entries(write_layer(changes, tmp_path / "t", store))]
    assert entries == [(".wh.top", "f"), ("a", "d"), ("a/.wh.gone", "f"), ("a/keep", "d"),
                       ("a/keep/.wh..wh..opq", "f"), ("a/keep/new", "f")]


def test_real_file_named_like_a_whiteout_is_refused(tmp_path: Path, store: BlobStore) -> None:
    (tmp_path / ".wh.evil").write_text("x")
    with pytest.raises(WharfieError, match="mean deletion"):
        write_layer([Change(".wh.evil", "add")], tmp_path, store)


def test_parent_symlink_in_source_is_refused(tmp_path: Path, store: BlobStore) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/secret").write_text("s")
    (tmp_path / "t").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "t/link")
    with pytest.raises(UnsafePathError):
        write_layer([Change("link/secret", "add")], tmp_path / "t", store)


def test_sockets_are_skipped(tmp_path: Path, store: BlobStore) -> None:
    (tmp_path / "t").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "t/sock"))
    try:
        assert read_entries(write_tree_layer(tmp_path / "t", store)) == []
    finally:
        sock.close()


def test_failed_write_leaves_nothing_in_the_store(tmp_path: Path, store: BlobStore) -> None:
    (tmp_path / "t").mkdir()
    with pytest.raises(FileNotFoundError):
        write_layer([Change("missing", "add")], tmp_path / "t", store)
    assert not list((store.root / "tmp").iterdir())
    assert not (store.root / "blobs").exists()


def test_parents_are_planned_before_children(tmp_path: Path) -> None:
    (tmp_path / "a/b/c").mkdir(parents=True)
    (tmp_path / "a/b/c/f").write_text("f")
    (tmp_path / "a-b").write_text("x")
    names = [e.tar_name for e in plan_entries([Change("a/b/c/f", "add"), Change("a-b", "add")], tmp_path)]
    assert names == ["a", "a/b", "a/b/c", "a/b/c/f", "a-b"]


def test_umoci_unpacks_our_layers(tmp_path: Path) -> None:
    """umoci (Go's archive/tar and compress/gzip) reads our layers, whiteouts and opaque dirs included."""
    if shutil.which("umoci") is None:
        pytest.skip("umoci not installed")
    layout = tmp_path / "layout"
    store = BlobStore(layout)
    base = tmp_path / "base"
    sample_tree(base, 1_700_000_000)
    (base / "etc/gone").write_text("g")
    (base / "etc/sub").mkdir()
    (base / "etc/sub/old").write_text("old")
    first = write_tree_layer(base, store)
    upper = tmp_path / "upper"
    (upper / "etc/sub").mkdir(parents=True)
    (upper / "etc/sub/new").write_text("new")
    second = write_layer([Change("etc/gone", "delete"), Change("etc/sub", "opaque"), Change("etc/sub/new", "add")],
                         upper, store)
    _write_layout(layout, store, [first, second])
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], check=True,
                   capture_output=True)
    ours = tmp_path / "ours"
    ours.mkdir()
    for layer in (first, second):
        with layer.open_compressed() as blob:
            extract_layer(blob, ours)
    rootfs = bundle / "rootfs"
    assert sorted(os.listdir(rootfs / "etc/sub")) == ["new"]
    assert not (rootfs / "etc/gone").exists()
    assert os.path.samefile(rootfs / "bin/sh", rootfs / "bin/busybox")
    assert diff_states(tree_state(ours), tree_state(rootfs)) == []


def _write_layout(layout: Path, store: BlobStore, layers: list) -> None:  # type: ignore[type-arg]
    config = ImageConfig(diff_ids=tuple(layer.diff_id for layer in layers)).to_bytes()
    config_desc = Descriptor(mt.OCI_CONFIG, store.put_bytes(config), len(config))
    manifest = Manifest(mt.OCI_MANIFEST, config_desc, tuple(layer.descriptor for layer in layers)).to_bytes()
    manifest_desc = Descriptor(mt.OCI_MANIFEST, store.put_bytes(manifest), len(manifest),
                               annotations={"org.opencontainers.image.ref.name": "latest"})
    (layout / "index.json").write_bytes(Index(mt.OCI_INDEX, (manifest_desc,)).to_bytes())
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))


@pytest.mark.slow
def test_sparse_4gib_file_streams(tmp_path: Path, store: BlobStore) -> None:
    """A 4 GiB sparse file: written without reading its holes, extracted sparse, in bounded memory."""
    source = tmp_path / "t"
    source.mkdir()
    size = 4 << 30
    with open(source / "disk.img", "wb") as handle:
        handle.write(b"head")
        handle.seek(size // 2)
        handle.write(b"middle")
        handle.truncate(size)
    layer = write_tree_layer(source, store)
    assert read_entries(layer) == [E("disk.img", size=size).normalised()]
    out = tmp_path / "out"
    out.mkdir()
    with layer.open_compressed() as blob:
        extract_layer(blob, out)
    st = os.stat(out / "disk.img")
    assert st.st_size == size
    assert st.st_blocks * 512 < 4 << 20, "extracted file stays sparse (data written in 1 MiB chunks)"
    with open(out / "disk.img", "rb") as handle:
        assert handle.read(4) == b"head"
        handle.seek(size // 2)
        assert handle.read(6) == b"middle"
    # Measured in a process of its own: the test process's peak is whatever earlier tests needed.
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from layers.extract import extract_layer\n"
        "from layers.writer import write_tree_layer\n"
        "from oci.blobstore import BlobStore\n"
        "work = Path(sys.argv[1])\n"
        "layer = write_tree_layer(work / 't', BlobStore(work / 'store2'))\n"
        "(work / 'out2').mkdir()\n"
        "with layer.open_compressed() as blob:\n"
        "    extract_layer(blob, work / 'out2')\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    repo = str(Path(__file__).resolve().parents[2])
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                            check=False, env={**os.environ, "PYTHONPATH": repo})
    assert result.returncode == 0, result.stderr
    # Streaming, not holding the file: the bound is an eighth of its size. Alone the peak is under
    # 200 MB; in a loaded full run it reached 350 MB (not yet explained; noted on issue 14).
    assert int(result.stdout) < 512 * 1024, "memory stays bounded, far below the file's 4 GiB"


def test_digest_is_sha256_of_blob_bytes(tmp_path: Path, store: BlobStore) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t/f").write_text("x")
    layer = write_tree_layer(tmp_path / "t", store)
    data = store.path(layer.digest).read_bytes()
    assert layer.digest.hex == hashlib.sha256(data).hexdigest()
    assert layer.diff_id == Digest.of_bytes(gzip.decompress(data))
