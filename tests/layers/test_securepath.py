"""RootDir.open_exact: coming back to a directory by the exact path it was created at."""

from __future__ import annotations

import os
from pathlib import Path

from layers.securepath import RootDir


def test_open_exact_finds_a_real_directory(tmp_path: Path) -> None:
    (tmp_path / "a/b").mkdir(parents=True)
    with RootDir(tmp_path) as root:
        fd = root.open_exact(["a", "b"])
        assert fd is not None
        try:
            assert os.path.samestat(os.fstat(fd), os.stat(tmp_path / "a/b"))
        finally:
            os.close(fd)
        assert root.open_exact([]) == root.fd


def test_open_exact_follows_no_symlink(tmp_path: Path) -> None:
    """A component replaced by a symlink (even one that stays inside the root) counts as gone."""
    (tmp_path / "real/b").mkdir(parents=True)
    os.symlink("real", tmp_path / "a")
    os.symlink("/", tmp_path / "abs")
    (tmp_path / "file").write_text("x")
    with RootDir(tmp_path) as root:
        assert root.open_exact(["a", "b"]) is None
        assert root.open_exact(["abs"]) is None
        assert root.open_exact(["file"]) is None
        assert root.open_exact(["missing", "b"]) is None
