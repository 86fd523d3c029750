"""layers/remove.remove_entry: whatever is at a path goes, a symlink is never followed, depth costs no recursion."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from layers.remove import remove_entry


def test_a_symlink_is_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep/file").write_text("host")
    root = tmp_path / "root"
    (root / "dir").mkdir(parents=True)
    (root / "dir/link-to-outside").symlink_to(outside)  # planted inside a tree being removed
    (root / "link").symlink_to(outside / "keep")
    remove_entry(root / "link")
    remove_entry(root / "dir")
    assert not os.path.lexists(root / "link") and not os.path.lexists(root / "dir")
    assert (outside / "keep/file").read_text() == "host"


def test_missing(tmp_path: Path) -> None:
    remove_entry(tmp_path / "absent", missing_ok=True)
    with pytest.raises(FileNotFoundError):
        remove_entry(tmp_path / "absent")


def test_by_dir_fd_and_files(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        remove_entry("f", dir_fd=fd)
        remove_entry("fifo", dir_fd=fd)
    finally:
        os.close(fd)
    assert os.listdir(tmp_path) == []


def test_a_tree_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    depth = sys.getrecursionlimit() + 100
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        os.mkdir("top", dir_fd=fd)
        current = os.open("top", os.O_PATH | os.O_DIRECTORY, dir_fd=fd)
        for _ in range(depth):
            os.mkdir("d", dir_fd=current)
            child = os.open("d", os.O_PATH | os.O_DIRECTORY, dir_fd=current)
            os.close(current)
            current = child
        os.close(current)
    finally:
        os.close(fd)
    remove_entry(tmp_path / "top")
    assert os.listdir(tmp_path) == []
