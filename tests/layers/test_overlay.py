"""The overlay snapshotter's reading of upper dirs, as root and in a user namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from layers.changes import Change
from layers.overlay import OverlayError, changes_from_upper, mount_overlay, overlay_supported, unmount

IS_ROOT = os.geteuid() == 0


def test_upper_dialect_without_a_mount(tmp_path: Path) -> None:
    """Whiteouts (0,0 char devices, one shared inode) and opaque xattrs, built by hand."""
    if not IS_ROOT:
        pytest.skip("mknod of a whiteout needs root")
    (tmp_path / "etc/opaque").mkdir(parents=True)
    os.setxattr(tmp_path / "etc/opaque", "trusted.overlay.opaque", b"y")
    (tmp_path / "etc/opaque/f").write_text("f")
    (tmp_path / "etc/notopaque").mkdir()
    os.setxattr(tmp_path / "etc/notopaque", "user.overlay.opaque", b"x")  # "x": has xattr whiteouts, not opaque
    os.mknod(tmp_path / "etc/gone", 0o600 | 0o020000, 0)
    os.link(tmp_path / "etc/gone", tmp_path / "gone2")  # shared inode, nlink 2: still whiteouts
    assert changes_from_upper(tmp_path) == [
        Change("etc", "add"), Change("etc/gone", "delete"), Change("etc/notopaque", "add"),
        Change("etc/opaque", "opaque"), Change("etc/opaque/f", "add"), Change("gone2", "delete")]


def test_redirect_dirs_are_refused(tmp_path: Path) -> None:
    if not IS_ROOT:
        pytest.skip("trusted.* xattrs need root")
    (tmp_path / "moved").mkdir()
    os.setxattr(tmp_path / "moved", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(OverlayError, match="redirect_dir=off"):
        changes_from_upper(tmp_path)


def test_mount_refuses_option_separators(tmp_path: Path) -> None:
    with pytest.raises(OverlayError, match="contains one of"):
        mount_overlay([tmp_path / "a,b"], tmp_path, tmp_path, tmp_path, userxattr=False)


@pytest.mark.skipif(not (IS_ROOT and overlay_supported()), reason="overlay mounts not available")
def test_snapshot_cost_follows_the_change(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    for i in range(2000):
        (lower / f"d{i % 20}").mkdir(parents=True, exist_ok=True)
        (lower / f"d{i % 20}" / f"f{i}").write_text("x")
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for directory in (upper, work, merged):
        directory.mkdir()
    mount_overlay([lower], upper, work, merged, userxattr=False)
    try:
        (merged / "d3/f3").write_text("changed")
        shutil.rmtree(merged / "d4")
    finally:
        unmount(merged)
    assert changes_from_upper(upper, [lower]) == [Change("d3", "modify"), Change("d3/f3", "modify"),
                                                  Change("d4", "delete")]


USERNS_SCRIPT = """
import os, sys, shutil
sys.path[:0] = [{repo!r}]
from pathlib import Path
from layers.overlay import changes_from_upper, mount_overlay, unmount, overlay_supported, in_user_namespace
assert in_user_namespace()
assert overlay_supported(Path({tmp!r}))
tmp = Path({tmp!r})
lower, upper, work, merged = (tmp / n for n in ("lower", "upper", "work", "merged"))
for d in (lower / "dir", upper, work, merged):
    d.mkdir(parents=True)
(lower / "dir/old").write_text("old")
(lower / "file").write_text("f")
mount_overlay([lower], upper, work, merged, userxattr=True)
try:
    shutil.rmtree(merged / "dir")
    (merged / "dir").mkdir()
    (merged / "dir/new").write_text("new")
    (merged / "file").unlink()
finally:
    unmount(merged)
print([(c.path, c.kind) for c in changes_from_upper(upper, [lower])])
"""


def test_user_namespace_overlay_with_userxattr(tmp_path: Path) -> None:
    """Non-root path: `unshare --user --map-root-user` plus a mount namespace, userxattr opaque dirs."""
    os.chmod(tmp_path, 0o777)
    script = USERNS_SCRIPT.format(repo=str(Path(__file__).parents[2]), tmp=str(tmp_path))
    result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-c", script],
                            check=False, capture_output=True, text=True)
    if result.returncode and ("unshare" in result.stderr or "overlay_supported" in result.stderr):
        pytest.skip(f"no user-namespace overlay here: {result.stderr.strip()[-200:]}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[('dir', 'opaque'), ('dir/new', 'add'), ('file', 'delete')]"
