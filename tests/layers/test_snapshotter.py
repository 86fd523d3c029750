"""snapshot_step: snapshotter choice, fallback, ignored paths, and the merge of the upper dir."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from layers.changes import Change
from layers.overlay import OverlayError, overlay_supported
from layers.snapshotter import snapshot_step

OVERLAY = os.geteuid() == 0 and overlay_supported()


def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hosts").write_text("h")
    (root / "proc").mkdir()
    return root


@pytest.mark.parametrize("prefer", ["walk", pytest.param("overlay", marks=pytest.mark.skipif(not OVERLAY,
                                                                                            reason="no overlay"))])
def test_ignored_paths_are_not_reported(prefer: str, tmp_path: Path) -> None:
    root = rootfs(tmp_path)
    with snapshot_step(root, ignore=["proc", "/etc/resolv.conf"], prefer=prefer) as snap:  # type: ignore[arg-type]
        (snap.workdir / "proc/self").write_text("x")
        (snap.workdir / "etc/resolv.conf").write_text("nameserver 10.0.0.1\n")
        (snap.workdir / "etc/hosts").write_text("changed")
        changes = snap.finish()
    assert Change("etc/hosts", "modify") in changes
    assert not [c for c in changes if c.path.startswith("proc") or c.path == "etc/resolv.conf"]
    assert (root / "etc/hosts").read_text() == "changed"


@pytest.mark.skipif(not OVERLAY, reason="no overlay")
def test_overlay_bookkeeping_xattrs_do_not_reach_the_rootfs(tmp_path: Path) -> None:
    root = rootfs(tmp_path)
    with snapshot_step(root, prefer="overlay") as snap:
        os.chmod(snap.workdir / "etc/hosts", 0o600)  # copy-up: the upper file gets trusted.overlay.origin
        snap.finish()
    for path in (root / "etc", root / "etc/hosts"):
        assert not [n for n in os.listxattr(path) if ".overlay." in n]


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs a second filesystem")
def test_fallback_to_walk_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = rootfs(tmp_path)
    if os.stat("/dev/shm").st_dev == os.stat(root).st_dev:
        pytest.skip("/dev/shm is on the same filesystem here")
    with caplog.at_level(logging.INFO, logger="layers.snapshotter"), \
            snapshot_step(root, scratch=Path("/dev/shm")) as snap:
        assert snap.kind == "walk"
        (snap.workdir / "new").write_text("n")
        assert snap.finish() == [Change("new", "add")]
    assert "using the walk snapshotter" in caplog.text
    with pytest.raises(OverlayError, match="requested but unavailable"), \
            snapshot_step(root, scratch=Path("/dev/shm"), prefer="overlay"):
        pass


def test_full_mode_uses_the_walk(tmp_path: Path) -> None:
    with snapshot_step(rootfs(tmp_path), mode="full") as snap:
        assert snap.kind == "walk"
