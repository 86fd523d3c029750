"""One RUN step with each snapshotter: base + its layer == the tree the step left, and both agree."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.execution.isolation import Isolation
from builder.execution.run_step import run_step
from builder.execution.sandbox import SANDBOX_IGNORED, RunSpec
from fixtures.readback import tree_of
from layers.extract import extract_layer
from layers.overlay import overlay_supported
from layers.writer import write_layer
from oci.blobstore import BlobStore

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/bin/busybox").exists(),
                                reason="needs root and a static /bin/busybox")

SCRIPT = """
set -e
echo new > /new.txt
echo changed >> /etc/conf
rm /etc/gone
rm -rf /var/olddir
rm -rf /var/replaced && mkdir /var/replaced && echo fresh > /var/replaced/only
rm /var/file2dir && mkdir /var/file2dir && echo in > /var/file2dir/x
rm -rf /var/dir2file && echo now-a-file > /var/dir2file
chmod 600 /etc/conf2
chown 1000:1001 /etc/owned
ln /etc/conf /etc/conf.hard
ln -s ../etc/conf /var/conf.link
mkdir -p /deep/a/b/c && echo d > /deep/a/b/c/f
touch /etc/untouched-sibling-not
"""


def _base(root: Path) -> None:
    for rel in ("bin", "etc", "var/olddir/sub", "var/replaced", "var/dir2file/x", "tmp"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    for applet in ("sh", "echo", "rm", "mkdir", "chmod", "chown", "ln", "touch"):
        (root / "bin" / applet).symlink_to("busybox")
    for rel, text in (("etc/conf", "c\n"), ("etc/conf2", "c2\n"), ("etc/gone", "g"), ("etc/owned", "o"),
                      ("etc/keep", "k"), ("var/olddir/sub/f", "f"), ("var/replaced/old", "o"),
                      ("var/file2dir", "file"), ("var/dir2file/x/y", "y")):
        (root / rel).write_text(text)


def _step(root: Path, scratch: Path, snapshotter: str, store: BlobStore):
    spec = RunSpec(root=root, argv=["/bin/sh", "-c", SCRIPT], env={"PATH": "/bin"})
    with run_step(spec, isolation=Isolation("sandbox", snapshotter=snapshotter), scratch=scratch,
                  ignore=SANDBOX_IGNORED, snapshot_mode="redo", output=None) as outcome:
        layer = write_layer(outcome.changes, outcome.source_root, store)
        paths = {c.path for c in outcome.changes}
    return layer, paths


@pytest.mark.parametrize("snapshotter", ["overlay", "walk"])
def test_base_plus_layer_is_the_tree_the_step_left(tmp_path: Path, snapshotter: str) -> None:
    if snapshotter == "overlay" and not overlay_supported(tmp_path):
        pytest.skip("no overlay mounts here")
    root, replay, scratch = tmp_path / "root", tmp_path / "replay", tmp_path / "scratch"
    _base(root)
    subprocess.run(["cp", "-a", str(root), str(replay)], check=True)
    scratch.mkdir()
    layer, paths = _step(root, scratch, snapshotter, BlobStore(tmp_path / "store"))
    after = tree_of(root)
    assert after["new.txt"][4] == "new\n" and "etc/gone" not in after and "var/olddir" not in after
    assert after["var/replaced/only"][4] == "fresh\n" and "var/replaced/old" not in after
    assert after["var/dir2file"][0] == "file" and after["var/file2dir/x"][4] == "in\n"
    assert after["etc/owned"][2:4] == (1000, 1001) and after["etc/conf2"][1] == 0o600
    assert os.stat(root / "etc/conf").st_ino == os.stat(root / "etc/conf.hard").st_ino
    assert "etc/keep" not in paths and "bin/busybox" not in paths, "unchanged files stay out of the layer"
    assert not any(p.startswith(("proc", "dev")) for p in paths)
    with layer.open_compressed() as blob:
        extract_layer(blob, replay)
    assert tree_of(replay) == after
    assert not os.listdir(scratch), "the overlay's dirs are cleaned up"
    assert not _overlay_xattrs(root), "overlay bookkeeping (origin, opaque, ...) stays out of the rootfs"


def _overlay_xattrs(root: Path) -> list[tuple[str, str]]:
    found = []
    for directory, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            path = os.path.join(directory, name)
            found += [(path, x) for x in os.listxattr(path, follow_symlinks=False) if ".overlay." in x]
    return found
