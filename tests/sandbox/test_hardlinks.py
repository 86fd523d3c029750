"""A RUN that changes a file with several names changes every name, as any filesystem does.

An overlay's copy-up breaks hard links (index=off, and rootless overlays cannot
have index=on): without care the step would see, and the layer record, two
different files. Each snapshotter must give the tree a real filesystem gives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
echo more >> /data/hard
cat /data/real/file > /seen-by-step
rm /data/swap && echo replaced > /data/swap
ln /data/linked /data/linked.third
rm /data/gone.one
"""


def _base(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "data" / "real").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    for applet in ("sh", "echo", "rm", "cat", "ln"):
        (root / "bin" / applet).symlink_to("busybox")
    for name, text, other in (("real/file", "base\n", "hard"), ("swap", "old\n", "swap.other"),
                              ("linked", "l\n", "linked.other"), ("keep", "k\n", "keep.other"),
                              ("gone.one", "g\n", "gone.two")):
        (root / "data" / name).write_text(text)
        os.link(root / "data" / name, root / "data" / other)


@pytest.mark.parametrize("snapshotter", ["overlay", "walk"])
def test_in_place_change_reaches_every_name(tmp_path: Path, snapshotter: str) -> None:
    if snapshotter == "overlay" and not overlay_supported(tmp_path):
        pytest.skip("no overlay mounts here")
    root, replay, scratch = tmp_path / "root", tmp_path / "replay", tmp_path / "scratch"
    _base(root)
    subprocess.run(["cp", "-a", str(root), str(replay)], check=True)
    scratch.mkdir()
    spec = RunSpec(root=root, argv=["/bin/sh", "-c", SCRIPT], env={"PATH": "/bin"})
    with run_step(spec, isolation=Isolation("sandbox", snapshotter=snapshotter), scratch=scratch,
                  ignore=SANDBOX_IGNORED, snapshot_mode="redo", output=None) as outcome:
        layer = write_layer(outcome.changes, outcome.source_root, BlobStore(tmp_path / "store"))
        paths = {c.path for c in outcome.changes}

    def ino(rel: str) -> int:
        return os.lstat(root / rel).st_ino

    after = tree_of(root)
    assert after["seen-by-step"][4] == "base\nmore\n", "the step itself sees the change through the other name"
    assert after["data/hard"][4] == after["data/real/file"][4] == "base\nmore\n"
    assert ino("data/hard") == ino("data/real/file")
    assert after["data/swap"][4] == "replaced\n" and after["data/swap.other"][4] == "old\n", \
        "replacing a name (rm, then create) leaves the other name alone"
    assert ino("data/linked") == ino("data/linked.other") == ino("data/linked.third")
    assert after["data/gone.two"][4] == "g\n" and "data/gone.one" not in after
    assert {"data/keep", "data/keep.other"}.isdisjoint(paths), "names of untouched files stay out of the layer"
    assert {"data/hard", "data/real/file", "data/swap", "data/gone.one"} <= paths

    with layer.open_compressed() as blob:
        extract_layer(blob, replay)
    assert tree_of(replay) == after
    assert os.lstat(replay / "data/hard").st_ino == os.lstat(replay / "data/real/file").st_ino, \
        "the layer records the two names as one file"
    assert not os.listdir(scratch), "the overlay's dirs are cleaned up"


ROOTLESS = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import tests.sandbox.test_hardlinks as case
from builder.execution.isolation import Isolation
case.Isolation = lambda mode, snapshotter: Isolation(mode, rootless=True, snapshotter=snapshotter)
case.test_in_place_change_reaches_every_name(Path({tmp!r}), "overlay")
"""


def test_rootless_overlay_keeps_links_too(tmp_path: Path) -> None:
    """In a user namespace the overlay has `userxattr` and no `index`: the copy-up must be ours there too."""
    if not overlay_supported(tmp_path, userxattr=True):
        pytest.skip("no overlay mounts with userxattr here")
    repo = str(Path(__file__).resolve().parents[2])
    script = ROOTLESS.format(repo=repo, tmp=str(tmp_path))
    result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
