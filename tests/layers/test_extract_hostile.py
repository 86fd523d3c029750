"""A corpus of hostile layers: each must be refused (UnsafePathError) or contained in the root,
and nothing outside the root may be written, whatever the layer does."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from layertools import make_tar, member, tree_state

from layers.extract import extract_layer
from oci.errors import UnsafePathError, WharfieError


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): outside holds a canary file an escape would overwrite or delete."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "target").write_text("canary")
    (outside / "dir").mkdir()
    return root, outside


def f(name: str, data: bytes = b"pwned") -> tuple[tarfile.TarInfo, bytes | None]:
    return member(name), data


def d(name: str) -> tuple[tarfile.TarInfo, bytes | None]:
    return member(name, "d"), None


def sym(name: str, target: str) -> tuple[tarfile.TarInfo, bytes | None]:
    return member(name, "l", link=target), None


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, bytes | None]:
    return member(name, "h", link=target), None


# Each case: (id, layers as a function of the outside dir) -> refused with UnsafePathError.
REFUSED: list[tuple[str, Callable[[Path], list[list[tuple[tarfile.TarInfo, bytes | None]]]]]] = [
    ("dotdot-prefix", lambda o: [[f("../outside/target")]]),
    ("dotdot-deep", lambda o: [[f("a/../../../outside/target")]]),
    ("dotdot-middle-in-root", lambda o: [[d("a"), f("a/../b")]]),
    ("absolute-name", lambda o: [[f(f"{o}/target")]]),
    ("relative-symlink-escape-then-write", lambda o: [[sym("evil", "../outside"), f("evil/target")]]),
    ("deep-relative-symlink-escape", lambda o: [[d("a"), d("a/b"), sym("a/b/up", "../../../outside"),
                                                 f("a/b/up/target")]]),
    ("symlink-chain-escape", lambda o: [[sym("one", "two/.."), d("two"), sym("three", "one/../outside"),
                                         f("three/target")]]),
    ("symlink-planted-by-earlier-layer", lambda o: [[sym("evil", "../outside")], [f("evil/target")]]),
    ("symlink-loop", lambda o: [[sym("a", "b"), sym("b", "a"), f("a/x")]]),
    ("hardlink-dotdot", lambda o: [[hard("link", "../outside/target")]]),
    ("hardlink-absolute", lambda o: [[hard("link", f"{o}/target")]]),
    ("hardlink-through-escaping-symlink", lambda o: [[sym("evil", "../outside"), hard("link", "evil/target")]]),
    ("whiteout-dotdot-name", lambda o: [[f("a/.wh..."), ]]),
    ("whiteout-dot-name", lambda o: [[f(".wh..")]]),
    ("whiteout-empty-name", lambda o: [[f(".wh.")]]),
    ("whiteout-through-escaping-symlink", lambda o: [[sym("evil", "../outside"), f("evil/.wh.target")]]),
    ("opaque-through-escaping-symlink", lambda o: [[sym("evil", "../outside"), f("evil/.wh..wh..opq")]]),
    ("root-replaced-by-symlink", lambda o: [[sym(".", str(o))]]),
    ("root-replaced-by-file", lambda o: [[f("./")]]),
    ("hardlink-to-directory", lambda o: [[d("dir"), hard("link", "dir")]]),
]


def apply_all(root: Path, layers: list[list[tuple[tarfile.TarInfo, bytes | None]]]) -> None:
    for layer in layers:
        extract_layer(make_tar(*layer), root, compression="none")


@pytest.mark.parametrize("case", [pytest.param(fn, id=name) for name, fn in REFUSED])
def test_refused(case: Callable[[Path], list[list[tuple[tarfile.TarInfo, bytes | None]]]],
                 box: tuple[Path, Path]) -> None:
    root, outside = box
    before = tree_state(outside)
    with pytest.raises(UnsafePathError) as info:
        apply_all(root, case(outside))
    assert "layer entry" in str(info.value) or "hard link" in str(info.value)
    assert tree_state(outside) == before


def test_error_names_the_entry(box: tuple[Path, Path]) -> None:
    root, _ = box
    with pytest.raises(UnsafePathError, match=r"'\.\./outside/target'.*'\.\.'"):
        apply_all(root, [[f("../outside/target")]])


# Absolute symlinks are resolved inside the root, as docker and containerd do (chroot semantics):
# writing through them is contained, not refused.
CONTAINED = [
    ("absolute-symlink-then-write", lambda o: [[sym("evil", str(o)), f("evil/target")]],
     lambda root, o: (root / o.relative_to("/") / "target").read_bytes() == b"pwned"),
    ("absolute-symlink-to-root-then-write", lambda o: [[sym("evil", "/"), f("evil/etc/passwd")]],
     lambda root, o: (root / "etc/passwd").read_bytes() == b"pwned"),
    ("earlier-layer-absolute-symlink", lambda o: [[sym("evil", str(o / "dir"))], [f("evil/new")]],
     lambda root, o: (root / str(o / "dir").lstrip("/") / "new").exists()),
    ("file-replaces-symlink-not-follows", lambda o: [[sym("evil", str(o / "target"))], [f("evil")]],
     lambda root, o: (root / "evil").read_bytes() == b"pwned" and not (root / "evil").is_symlink()),
    ("dir-replaces-symlink", lambda o: [[sym("evil", str(o / "dir"))], [d("evil"), f("evil/x")]],
     lambda root, o: (root / "evil/x").is_file() and not (root / "evil").is_symlink()),
    ("hardlink-through-absolute-symlink", lambda o: [[d("etc"), f("etc/passwd", b"inside"),
                                                      sym("evil", "/etc"), hard("link", "evil/passwd")]],
     lambda root, o: os.path.samefile(root / "link", root / "etc/passwd")),
    ("hardlink-to-symlink-links-the-symlink", lambda o: [[sym("s", str(o / "target")), hard("h", "s")]],
     lambda root, o: os.readlink(root / "h") == str(o / "target")),
    ("whiteout-through-absolute-symlink", lambda o: [[sym("evil", str(o)), f("evil/.wh.target")]],
     lambda root, o: True),
    ("opaque-under-absolute-symlink", lambda o: [[sym("evil", str(o)), f("evil/.wh..wh..opq")]],
     lambda root, o: True),
]


@pytest.mark.parametrize("layers,check", [pytest.param(fn, chk, id=name) for name, fn, chk in CONTAINED])
def test_contained(layers: Callable[[Path], list[list[tuple[tarfile.TarInfo, bytes | None]]]],
                   check: Callable[[Path, Path], bool], box: tuple[Path, Path]) -> None:
    root, outside = box
    before = tree_state(outside)
    apply_all(root, layers(outside))
    assert tree_state(outside) == before
    assert check(root, outside)


def test_corrupt_layer_is_a_clear_error(box: tuple[Path, Path]) -> None:
    root, _ = box
    data = make_tar(f("a", b"x" * 2000)).getvalue()[:1200]  # header plus a truncated body
    import io

    with pytest.raises(WharfieError, match="corrupt layer|ended after"):
        extract_layer(io.BytesIO(data), root, compression="none")


def test_oversized_pax_record_is_refused_before_it_is_read(box: tuple[Path, Path]) -> None:
    root, _ = box
    info, data = f("x")
    info.pax_headers["comment"] = "x" * (2 << 20)
    with pytest.raises(WharfieError, match="header record"):
        apply_all(root, [[(info, data)]])
