"""The change matrix of issue 4: each row is a step; both snapshotters must turn it into the exact
tar entries expected, and applying that layer onto the lower tree must give the upper tree."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from layertools import E, copy_tree, diff_states, read_entries, tree_state

from layers.extract import extract_layer
from layers.overlay import changes_from_upper, mount_overlay, overlay_supported, unmount
from layers.snapshotter import snapshot_step
from layers.walk import Snapshot, diff
from layers.writer import write_layer
from oci.blobstore import BlobStore

IS_ROOT = os.geteuid() == 0
LOWER_MTIME = 1_600_000_000


def base_tree(root: Path) -> None:
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/libc.so").write_bytes(b"ELF" * 10)
    (root / "var/cache/sub").mkdir(parents=True)
    for name in ("a", "b", "sub/c"):
        (root / "var/cache" / name).write_text(name)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (LOWER_MTIME, LOWER_MTIME), follow_symlinks=False)


def write(path: Path, data: bytes | str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        os.chmod(path, mode)


def replace_file_with_dir(root: Path) -> None:
    (root / "etc/hosts").unlink()
    write(root / "etc/hosts/a", "a")


def recreate_dir(root: Path) -> None:
    # The new directory exists before the old one goes, so its inode cannot be reused.
    write(root / "var/cache.new/fresh", "fresh")
    shutil.rmtree(root / "var/cache")
    os.rename(root / "var/cache.new", root / "var/cache")


def hardlink_pair(root: Path) -> None:
    write(root / "usr/lib/a.so", "aaaa")
    os.link(root / "usr/lib/a.so", root / "usr/lib/b.so")


# security.capability v2: cap_net_bind_service (bit 10) permitted and effective.
CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


def set_capability(root: Path) -> None:
    write(root / "usr/bin/ping", "ping", 0o755)
    os.setxattr(root / "usr/bin/ping", "security.capability", CAPABILITY)


def ten_thousand(root: Path) -> None:
    for i in range(10_000):
        write(root / "data" / f"f{i:05d}", str(i))


TEN_K = [E("data/", "d")] + [E(f"data/f{i:05d}", size=len(str(i))) for i in range(10_000)]
USR_LIB = [E("usr/", "d"), E("usr/lib/", "d")]


@dataclass
class Case:
    id: str
    change: Callable[[Path], None]
    expected: list[E]
    overlay_expected: list[E] | None = None
    root_only: bool = False
    marks: list[pytest.MarkDecorator] = field(default_factory=list)


CASES = [
    Case("create", lambda r: write(r / "etc/new.conf", "new"), [E("etc/", "d"), E("etc/new.conf", size=3)]),
    Case("modify", lambda r: write(r / "etc/passwd", "root\nme\n"), [E("etc/", "d"), E("etc/passwd", size=8)]),
    Case("chmod", lambda r: os.chmod(r / "etc/passwd", 0o600), [E("etc/", "d"), E("etc/passwd", mode=0o600, size=5)]),
    Case("chown", lambda r: os.chown(r / "etc/passwd", 1000, 1001),
         [E("etc/", "d"), E("etc/passwd", uid=1000, gid=1001, size=5)], root_only=True),
    Case("pax-extremes", lambda r: (write(r / ("d" * 60) / ("n" * 90), "x"), os.chown(r / ("d" * 60) / ("n" * 90),
                                                                                       3_000_000, 2_500_000)),
         [E("d" * 60 + "/", "d"), E("d" * 60 + "/" + "n" * 90, uid=3_000_000, gid=2_500_000, size=1)], root_only=True),
    Case("delete-file", lambda r: (r / "etc/hosts").unlink(), [E("etc/", "d"), E("etc/.wh.hosts")]),
    Case("delete-dir", lambda r: shutil.rmtree(r / "var/cache"), [E("var/", "d"), E("var/.wh.cache")]),
    Case("replace-dir-with-file", lambda r: (shutil.rmtree(r / "var/cache"), write(r / "var/cache", "x")),
         [E("var/", "d"), E("var/cache", size=1)]),
    Case("replace-file-with-dir", replace_file_with_dir, [E("etc/", "d"), E("etc/hosts/", "d"), E("etc/hosts/a", size=1)],
         overlay_expected=[E("etc/", "d"), E("etc/hosts/", "d"), E("etc/hosts/.wh..wh..opq"),
                           E("etc/hosts/a", size=1)]),
    Case("recreate-dir", recreate_dir,
         [E("var/", "d"), E("var/cache/", "d"), E("var/cache/.wh..wh..opq"), E("var/cache/fresh", size=5)]),
    Case("hardlink-pair", hardlink_pair, USR_LIB + [E("usr/lib/a.so", size=4), E("usr/lib/b.so", "h", link="usr/lib/a.so")]),
    Case("hardlink-to-lower", lambda r: os.link(r / "usr/lib/libc.so", r / "usr/lib/libc.so.6"),
         USR_LIB + [E("usr/lib/libc.so", size=30), E("usr/lib/libc.so.6", "h", link="usr/lib/libc.so")]),
    Case("symlink-to-dir", lambda r: os.symlink("usr/lib", r / "lib"), [E("lib", "l", link="usr/lib")]),
    Case("dangling-symlink", lambda r: os.symlink("/nonexistent/target", r / "etc/dangling"),
         [E("etc/", "d"), E("etc/dangling", "l", link="/nonexistent/target")]),
    Case("setuid-and-sticky", lambda r: (write(r / "usr/bin/su", "su", 0o4755), (r / "tmp").mkdir(),
                                         os.chmod(r / "tmp", 0o1777)),
         [E("tmp/", "d", mode=0o1777), E("usr/", "d"), E("usr/bin/", "d"), E("usr/bin/su", mode=0o4755, size=2)]),
    Case("xattr-user", lambda r: os.setxattr(r / "etc/passwd", "user.comment", b"hi"),
         [E("etc/", "d"), E("etc/passwd", size=5, xattrs=(("user.comment", b"hi"),))]),
    Case("xattr-capability", set_capability,
         [E("usr/", "d"), E("usr/bin/", "d"),
          E("usr/bin/ping", mode=0o755, size=4, xattrs=(("security.capability", CAPABILITY),))], root_only=True),
    Case("fifo", lambda r: ((r / "run").mkdir(), os.mkfifo(r / "run/ctl")), [E("run/", "d"), E("run/ctl", "p")]),
    Case("device-node", lambda r: ((r / "dev").mkdir(), os.mknod(r / "dev/null", 0o020000, os.makedev(1, 3)),
                                   os.chmod(r / "dev/null", 0o666)),
         [E("dev/", "d"), E("dev/null", "c", mode=0o666)], root_only=True),
    Case("10k-files", ten_thousand, TEN_K),
]


def params() -> list[object]:
    out = []
    for case in CASES:
        marks = list(case.marks)
        if case.root_only:
            marks.append(pytest.mark.skipif(not IS_ROOT, reason="needs root"))
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def check_roundtrip(lower: Path, expected_tree: dict[str, object], layer: object, tmp: Path) -> None:
    target = tmp / "applied"
    target.mkdir()
    copy_tree(lower, target)
    with layer.open_compressed() as blob:  # type: ignore[attr-defined]
        extract_layer(blob, target)
    assert diff_states(tree_state(target), expected_tree) == []


def make_lower(tmp: Path) -> Path:
    lower = tmp / "lower"
    lower.mkdir()
    base_tree(lower)
    return lower


@pytest.mark.parametrize("case", params())
def test_walk_snapshotter(case: Case, tmp_path: Path, store: BlobStore) -> None:
    lower = make_lower(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    copy_tree(lower, work)
    before = Snapshot.take(work)
    case.change(work)
    changes = diff(before, Snapshot.take(work))
    layer = write_layer(changes, work, store)
    assert read_entries(layer) == [e.normalised() for e in case.expected]
    check_roundtrip(lower, tree_state(work), layer, tmp_path)


OVERLAY = IS_ROOT and overlay_supported()


@pytest.mark.skipif(not OVERLAY, reason="overlay mounts not available")
@pytest.mark.parametrize("case", params())
def test_overlay_snapshotter(case: Case, tmp_path: Path, store: BlobStore) -> None:
    lower = make_lower(tmp_path)
    upper, work, merged = tmp_path / "upper", tmp_path / "ovl-work", tmp_path / "merged"
    for directory in (upper, work, merged):
        directory.mkdir()
    mount_overlay([lower], upper, work, merged, userxattr=False)
    try:
        case.change(merged)
        expected_tree = tree_state(merged)
    finally:
        unmount(merged)
    layer = write_layer(changes_from_upper(upper, [lower]), upper, store)
    expected = case.overlay_expected or case.expected
    assert read_entries(layer) == [e.normalised() for e in expected]
    check_roundtrip(lower, expected_tree, layer, tmp_path)


@pytest.mark.parametrize("prefer", ["walk", pytest.param("overlay", marks=pytest.mark.skipif(
    not OVERLAY, reason="overlay mounts not available"))])
@pytest.mark.parametrize("case", params())
def test_snapshot_step_leaves_the_result_in_rootfs(case: Case, prefer: str, tmp_path: Path, store: BlobStore) -> None:
    """The driver both snapshotters share: same layer, and the rootfs holds the step's result after it."""
    lower = make_lower(tmp_path)
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    copy_tree(lower, rootfs)
    with snapshot_step(rootfs, prefer=prefer) as snap:  # type: ignore[arg-type]
        assert snap.kind == prefer
        case.change(snap.workdir)
        expected_tree = tree_state(snap.workdir)
        layer = write_layer(snap.finish(), snap.source_root, store)
    expected = (case.overlay_expected or case.expected) if prefer == "overlay" else case.expected
    assert read_entries(layer) == [e.normalised() for e in expected]
    assert diff_states(tree_state(rootfs), expected_tree) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("wharfie-step-")]
    check_roundtrip(lower, expected_tree, layer, tmp_path)
