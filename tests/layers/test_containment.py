"""The one containment rule (layers/securepath.py): resolved by descriptor as if the root were `/`,
`..` stopping at the root; hostile trees must never lead a path, or an open, outside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from layers.securepath import open_in_root, resolve_in_root
from oci.errors import UnsafePathError


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): outside holds the file an escape would reach."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    (root / "usr/lib").mkdir(parents=True)
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:4242:4242::/:/bin/sh\n")
    return root, outside


def test_absolute_symlink_is_taken_from_the_root(box: tuple[Path, Path]) -> None:
    root, outside = box
    (root / "lib").symlink_to("/usr/lib")
    (root / "evil").symlink_to(outside)
    assert resolve_in_root(root, "lib/x.so") == root / "usr/lib/x.so"
    assert resolve_in_root(root, "/evil/passwd") == root / str(outside).lstrip("/") / "passwd"


@pytest.mark.parametrize("path", ["../outside/passwd", "/../../outside/passwd", "etc/../../../outside/passwd"])
def test_dotdot_clamps_at_the_root(box: tuple[Path, Path], path: str) -> None:
    root, _ = box
    assert resolve_in_root(root, path) == root / "outside/passwd"


def test_relative_symlink_climbing_out_clamps_at_the_root(box: tuple[Path, Path]) -> None:
    root, _ = box
    (root / "etc/up").symlink_to("../../../../outside")
    assert resolve_in_root(root, "etc/up/passwd") == root / "outside/passwd"


def test_last_symlink_is_followed_only_when_asked(box: tuple[Path, Path]) -> None:
    root, outside = box
    (root / "dest").symlink_to(outside)
    assert resolve_in_root(root, "dest") == root / "dest"
    assert resolve_in_root(root, "dest", follow_last=True) == root / str(outside).lstrip("/")


def test_missing_components_are_kept_as_named(box: tuple[Path, Path]) -> None:
    root, _ = box
    (root / "link").symlink_to("usr")
    assert resolve_in_root(root, "new/dir/file") == root / "new/dir/file"
    assert resolve_in_root(root, "missing/../link/lib") == root / "usr/lib"
    (root / "etc/file").write_text("f")
    assert resolve_in_root(root, "etc/file/x") == root / "etc/file/x", "past a file: left for the caller to fail on"


def test_symlink_loop_is_refused(box: tuple[Path, Path]) -> None:
    root, _ = box
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    with pytest.raises(UnsafePathError, match="too many levels of symlinks"):
        resolve_in_root(root, "a/x")


def test_open_in_root_never_reads_outside(box: tuple[Path, Path]) -> None:
    root, outside = box
    (root / "etc/passwd").symlink_to(outside / "passwd")  # absolute: taken from the root, where nothing is
    with pytest.raises(FileNotFoundError):
        os.close(open_in_root(root, "etc/passwd"))
    (root / "etc/group").symlink_to("../../../outside/passwd")  # relative: clamps, and finds nothing either
    with pytest.raises(FileNotFoundError):
        os.close(open_in_root(root, "etc/group"))
    (root / "etc/real").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc/shadow").symlink_to("/etc/real")
    fd = open_in_root(root, "etc/shadow")
    with os.fdopen(fd) as handle:
        assert handle.read().startswith("root:")
    assert (outside / "passwd").read_text().startswith("evil:"), "the outside file is untouched"
