"""A stacked stage tree: steps run on overlays over it and are folded into its upper dir; the tree must
read exactly as a plain directory the same commands ran in, and its lower dirs must never change."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from builder.execution.stacked_rootfs import StackedRootfs
from fixtures.readback import tree_snapshot
from layers.overlay import changes_from_upper, mount_overlay, unmount

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay mounts need root")

STEPS = [
    "rm d/child1 && echo more >> f && chmod 700 d",
    "rm -rf d",  # a lower directory deleted: a whiteout in the stage's upper dir
    "mkdir d && echo new > d/new",  # ... replaced by a new directory: the lower's children must stay hidden
    "rm -rf e && mkdir e && echo x > e/x",  # the step's own overlay makes e opaque
    "mkdir -p g/h && echo 1 > g/h/i && rm f2 && chmod 600 e/x",
    "rm -rf g && echo file > g",  # a directory of the stage's upper dir replaced by a file
    "ln -s target link && mv e e2 && ln f hard",
    "mkdir u && echo 1 > u/a && echo 2 > u/b",
    "rm u/a",  # a file only the stage's upper dir has: removed there, no whiteout (it would show in u)
    "rm -rf u",
]


def _make_lower(root: Path) -> Path:
    for rel, data in {"f": b"f", "f2": b"f2", "d/child1": b"1", "d/child2": b"2", "e/old1": b"o",
                      "e/sub/old2": b"o2"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    os.chmod(root / "e", 0o750)
    return root


def _fingerprint(root: Path) -> str:
    """Names, metadata, contents and xattrs of everything under `root`: any write to it changes this."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        for name in sorted([*dirnames, *filenames]):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest.update(f"{path}:{st.st_mode}:{st.st_uid}:{st.st_gid}:{st.st_mtime_ns}:{st.st_ino}".encode())
            digest.update(repr(sorted(os.listxattr(path, follow_symlinks=False))).encode())
            if stat.S_ISREG(st.st_mode):
                digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def _run_on_overlay(tree: StackedRootfs, command: str, scratch: Path) -> None:
    upper, work, merged = (scratch / name for name in ("upper", "work", "merged"))
    for directory in (upper, work, merged):
        directory.mkdir(parents=True)
    mount_overlay([tree.merged], upper, work, merged, userxattr=False)
    try:
        subprocess.run(["sh", "-ec", command], cwd=merged, check=True)
    finally:
        unmount(merged)
    tree.fold(upper, changes_from_upper(upper, [tree.merged]))


def test_steps_folded_into_a_stacked_tree_read_as_on_a_plain_directory(tmp_path: Path) -> None:
    lower = _make_lower(tmp_path / "store-entry")
    plain = tmp_path / "plain"
    subprocess.run(["cp", "-a", str(lower), str(plain)], check=True)
    before = _fingerprint(lower)
    tree = StackedRootfs(tmp_path / "stage-0", [lower], userxattr=False)
    tree.mount()
    try:
        for number, command in enumerate(STEPS):
            _run_on_overlay(tree, command, tmp_path / f"step-{number}")
            subprocess.run(["sh", "-ec", command], cwd=plain, check=True)
            # Times are "now" on both sides, at different moments: the rest must be equal.
            assert tree_snapshot(tree.merged) == tree_snapshot(plain), f"after step {number}: {command}"
        tree.freeze()  # a later stage stacks on it: read-only, same view
        assert tree_snapshot(tree.merged) == tree_snapshot(plain)
        with pytest.raises(OSError):
            (tree.merged / "written").write_text("no")
    finally:
        tree.remove()
    assert _fingerprint(lower) == before, "the shared lower dir changed"
    assert not tree.merged.exists() and not tree.upper.exists()
    assert str(tree.merged) not in Path("/proc/self/mountinfo").read_text()


def test_stacking_is_refused_where_the_store_is_itself_on_an_overlay(tmp_path: Path) -> None:
    # As in a job container whose root is an overlay: a stage overlay over the store, then a RUN's over it,
    # would be three deep, which the kernel refuses; the probe says so and the stage is extracted instead.
    plain = tmp_path / "plain"
    plain.mkdir()
    assert StackedRootfs.stacking_works(plain, tmp_path, userxattr=False)
    dirs = {name: tmp_path / name for name in ("lower", "upper", "work", "container-root")}
    for directory in dirs.values():
        directory.mkdir()
    mount_overlay([dirs["lower"]], dirs["upper"], dirs["work"], dirs["container-root"], userxattr=False)
    try:
        assert not StackedRootfs.stacking_works(dirs["container-root"], tmp_path, userxattr=False)
    finally:
        unmount(dirs["container-root"])
    assert sorted(os.listdir(dirs["upper"])) == [] and sorted(os.listdir(plain)) == [], "the probes leave nothing"
