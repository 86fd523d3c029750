"""`write_planned_layer`: entries described rather than found in a tree give the bytes `write_layer` gives."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from test_layer_writer import sample_tree

from layers.changes import Change
from layers.writer import PlannedEntry, write_layer, write_planned_layer
from oci.blobstore import BlobStore
from oci.errors import WharfieError


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "store")


def _described(root: Path) -> list[PlannedEntry]:
    """Every entry of the tree as a plan: metadata copied from the tree, content read from it."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
            entries.append(PlannedEntry(os.path.relpath(path, root), kind, st.st_uid, st.st_gid,  # type: ignore[arg-type]
                                        stat.S_IMODE(st.st_mode), st.st_mtime_ns,
                                        source=None if kind == "dir" else path,
                                        link_key=(st.st_dev, st.st_ino) if kind != "dir" and st.st_nlink > 1 else None))
    return entries[::-1]  # any order: the writer sorts


@pytest.mark.parametrize("epoch", [None, 1_000])
def test_a_described_tree_is_written_as_the_tree_itself(tmp_path: Path, store: BlobStore, epoch: int | None) -> None:
    root = tmp_path / "tree"
    sample_tree(root, 1_234_567)  # hard links, a symlink, long names
    changes = [Change(os.path.relpath(os.path.join(d, n), root), "add")
               for d, dirs, files in os.walk(root) for n in dirs + files]
    from_tree = write_layer(changes, root, store, epoch=epoch)
    planned = write_planned_layer(_described(root), store, epoch=epoch)
    assert (planned.digest, planned.diff_id, planned.size) == (from_tree.digest, from_tree.diff_id, from_tree.size)


def test_a_name_that_means_deletion_is_refused(tmp_path: Path, store: BlobStore) -> None:
    """A context file named .wh.X must not become a whiteout of X in the image."""
    source = tmp_path / ".wh.passwd"
    source.write_text("x")
    entries = [PlannedEntry("etc", "dir", 0, 0, 0o755, 0),
               PlannedEntry("etc/.wh.passwd", "file", 0, 0, 0o644, 0, source=str(source))]
    with pytest.raises(WharfieError, match="mean deletion"):
        write_planned_layer(entries, store)
    assert not list((tmp_path / "store").glob("blobs/*/*"))
