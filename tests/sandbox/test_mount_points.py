"""Mount points found and made inside a rootfs by descriptor, and removed only when still what was made."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.execution.mount_points import MountPointError, StubMaker, open_mount_point, remove_stubs
from layers.securepath import RootDir


def _where(fd: int, root: Path) -> str:
    try:
        return "/" + os.path.relpath(os.readlink(f"/proc/self/fd/{fd}"), root).removeprefix(".")
    finally:
        os.close(fd)


def test_links_are_followed_inside_the_root_only(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/mount").write_text("image's")
    outside.mkdir()
    (outside / "mount").write_text("host's")
    (root / "abs").symlink_to("/usr/bin/mount")
    (root / "etc/rel").symlink_to("../usr/bin")
    (root / "run").symlink_to(str(outside))  # absolute host path: taken from the root, so a missing dir
    (root / "climb").symlink_to("../" * 8 + "outside/mount")
    with RootDir(root) as rootdir:
        assert _where(open_mount_point(rootdir, "/abs", directory=False, maker=None), root) == "/usr/bin/mount"
        assert _where(open_mount_point(rootdir, "/etc/rel/mount", directory=False, maker=None), root) \
            == "/usr/bin/mount"
        with pytest.raises(MountPointError, match="mount point /run/mount"):
            open_mount_point(rootdir, "/run/mount", directory=False, maker=None)
        with pytest.raises(MountPointError, match="points outside the root"):
            open_mount_point(rootdir, "/climb", directory=False, maker=None)
        with pytest.raises(MountPointError, match="is not a directory"):
            open_mount_point(rootdir, "/abs", directory=True, maker=None)
    assert (outside / "mount").read_text() == "host's"


def test_missing_points_are_made_inside_and_removed_by_descriptor(tmp_path: Path) -> None:
    root, victim = tmp_path / "root", tmp_path / "victim"
    root.mkdir()
    (root / "run").symlink_to(str(victim))  # made as /<victim> inside the root, never on the host
    victim.mkdir()
    maker = StubMaker()
    with RootDir(root, mkdir=maker.mkdir) as rootdir:
        os.close(open_mount_point(rootdir, "/d/x", directory=True, maker=maker))
        os.close(open_mount_point(rootdir, "/d/y", directory=False, maker=maker))
        os.close(open_mount_point(rootdir, "/run/secrets/t", directory=False, maker=maker))
    assert (root / "d/x").is_dir() and (root / "d/y").is_file()
    assert (root / str(victim).lstrip("/") / "secrets/t").is_file() and list(victim.iterdir()) == []
    # The step moves /d away and plants a link to a host directory holding an empty x and y.
    (victim / "x").mkdir()
    (victim / "y").write_text("")
    (root / "d").rename(root / "moved")
    (root / "d").symlink_to(str(victim))
    remove_stubs(maker.stubs)
    assert (victim / "x").is_dir() and (victim / "y").is_file(), "the clean-up followed the planted link"
    assert os.listdir(root / "moved") == [], "the stubs made are removed where they went"
    assert (root / "d").is_symlink()
    assert not (root / str(victim).lstrip("/")).exists() or os.listdir(root / str(victim).lstrip("/")) == []
    assert maker.stubs == []


def test_a_stub_the_step_filled_or_replaced_stays(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    maker = StubMaker()
    with RootDir(root, mkdir=maker.mkdir) as rootdir:
        os.close(open_mount_point(rootdir, "/a", directory=True, maker=maker))
        os.close(open_mount_point(rootdir, "/f", directory=False, maker=maker))
    (root / "a/kept").write_text("the step's")
    (root / "f").unlink()
    (root / "f").write_text("")  # a new empty file of the step's, another inode
    remove_stubs(maker.stubs)
    assert (root / "a/kept").exists() and (root / "f").exists()


def test_refuse_vetoes_a_mount_point(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    maker = StubMaker(record=False, refuse=lambda fd, name: f"no {name}")
    with RootDir(root, mkdir=maker.mkdir) as rootdir, pytest.raises(MountPointError, match="no d"):
        open_mount_point(rootdir, "/d/x", directory=True, maker=maker)
    assert os.listdir(root) == []
