"""The walk snapshotter's diff rules."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from layers.changes import Change
from layers.walk import Snapshot, diff, mount_points


def tree(root: Path) -> Path:
    (root / "a/b/c").mkdir(parents=True)
    (root / "a/b/c/f").write_text("f")
    (root / "a/file").write_text("content")
    (root / "proc/1").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/resolv.conf").write_text("nameserver 1.1.1.1\n")
    return root


def test_no_change_no_changes(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert diff(Snapshot.take(root), Snapshot.take(root)) == []


def test_deleted_dir_is_one_delete(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = Snapshot.take(root)
    shutil.rmtree(root / "a/b")
    assert diff(before, Snapshot.take(root)) == [Change("a", "modify"), Change("a/b", "delete")]


def test_dir_replaced_by_file_implies_children(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = Snapshot.take(root)
    shutil.rmtree(root / "a/b")
    (root / "a/b").write_text("now a file")
    assert diff(before, Snapshot.take(root)) == [Change("a", "modify"), Change("a/b", "modify")]


def test_file_replaced_by_dir(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = Snapshot.take(root)
    (root / "a/file").unlink()
    (root / "a/file").mkdir()
    (root / "a/file/x").write_text("x")
    assert diff(before, Snapshot.take(root)) == [Change("a", "modify"), Change("a/file", "modify"),
                                                 Change("a/file/x", "add")]


def test_ignored_paths_are_not_walked(tmp_path: Path) -> None:
    root = tree(tmp_path)
    ignore = ["proc", "etc/resolv.conf"]
    before = Snapshot.take(root, ignore)
    assert "proc" not in before.entries and "proc/1" not in before.entries
    (root / "proc/2").mkdir()
    (root / "etc/resolv.conf").write_text("changed by the runtime\n")
    os.utime(root / "etc", (1, 1))  # the dir itself is not ignored
    assert diff(before, Snapshot.take(root, ignore)) == [Change("etc", "modify")]


def test_metadata_mode_misses_same_size_same_mtime_rewrite_full_mode_sees_it(tmp_path: Path) -> None:
    root = tree(tmp_path)
    stamp = os.stat(root / "a/file").st_mtime_ns
    metadata, full = Snapshot.take(root), Snapshot.take(root, mode="full")
    with open(root / "a/file", "r+") as handle:  # same inode, same size
        handle.write("CONTENT")
    os.utime(root / "a/file", ns=(stamp, stamp))
    assert diff(metadata, Snapshot.take(root)) == []
    assert diff(full, Snapshot.take(root, mode="full")) == [Change("a/file", "modify")]


def test_new_hardlink_marks_the_old_name_modified(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = Snapshot.take(root)
    os.link(root / "a/file", root / "a/link")
    assert diff(before, Snapshot.take(root)) == [Change("a", "modify"), Change("a/file", "modify"),
                                                 Change("a/link", "add")]


def test_recreated_dir_is_opaque_with_all_children_added(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = Snapshot.take(root)
    (root / "a/b.new/c").mkdir(parents=True)
    (root / "a/b.new/c/f").write_text("f")  # same name, same content as before
    shutil.rmtree(root / "a/b")
    os.rename(root / "a/b.new", root / "a/b")
    assert diff(before, Snapshot.take(root)) == [Change("a", "modify"), Change("a/b", "opaque"),
                                                 Change("a/b/c", "add"), Change("a/b/c/f", "add")]


def test_symlink_retarget_and_xattr(tmp_path: Path) -> None:
    root = tree(tmp_path)
    os.symlink("a", root / "link")
    before = Snapshot.take(root)
    os.unlink(root / "link")
    os.symlink("etc", root / "link")
    os.setxattr(root / "a/file", "user.x", b"1")
    changes = diff(before, Snapshot.take(root))
    assert Change("link", "modify") in changes and Change("a/file", "modify") in changes


def test_sorted_by_components(tmp_path: Path) -> None:
    before = Snapshot.take(tmp_path)
    for name in ("a-b", "a/b", "a.b"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [c.path for c in diff(before, Snapshot.take(tmp_path))] == ["a", "a/b", "a-b", "a.b"]


def test_mount_points_below_root(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "30 22 0:5 / /proc rw - proc proc rw\n"
        "31 22 0:6 / /work/cache\\040dir rw - tmpfs tmpfs rw\n"
        "32 22 0:7 / /workspace rw - tmpfs tmpfs rw\n"
    )
    assert mount_points(Path("/"), str(info)) == ["proc", "work/cache dir", "workspace"]
    assert mount_points(Path("/work"), str(info)) == ["cache dir"]


def test_mount_points_of_this_machine_include_proc() -> None:
    assert "proc" in mount_points(Path("/"))
