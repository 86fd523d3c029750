"""Issue #10 point 3: archive metadata must land on the object extraction created, never on what
its name points to later.

The attack: a directory entry `d/` with mode 04777 (owner, times, xattrs) and, later in the
same archive or in a later layer, something else at `d` (a symlink to a host file, a hard link
to such a symlink, a plain file). Directory metadata is applied at the end of a layer; applied
through the name, it would follow the symlink and make the host file `rwsrwxrwx`. Each case
checks the HOST objects afterwards (a victim file and directory in a tmp dir outside the root),
in both extraction modes: a plain ADD archive (`whiteouts=False`) and an image layer.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from layertools import make_tar, member

from layers.extract import extract_layer

IS_ROOT = os.geteuid() == 0
HOST_UID = 1234  # the victims' owner as root: a chown to the entry's 4242 would show
EVIL_UID = 4242
HOST_MTIME_NS = 1_111_111_111_000_000_000
EVIL_MTIME = 7

Entry = tuple[tarfile.TarInfo, bytes | None]
Layers = list[list[Entry]]


class Host:
    """Victims outside the root: a file, a directory, and `d` (what `a -> HOST` then `a/d` reaches)."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "host"
        self.root = base / "root"
        self.dir.mkdir()
        self.root.mkdir()
        self.file = self.dir / "victim"
        self.file.write_text("host secret")
        self.subdir = self.dir / "vdir"
        self.subdir.mkdir()
        (self.dir / "d").mkdir()
        for path in (self.file, self.subdir, self.dir / "d", self.dir):
            os.chmod(path, 0o640 if path.is_file() else 0o750)
            if IS_ROOT:
                os.chown(path, HOST_UID, HOST_UID)
            os.utime(path, ns=(HOST_MTIME_NS, HOST_MTIME_NS))

    def rel(self, victim: Path, start: str = "") -> str:
        """`victim` as a relative link target from the directory `start` inside the root."""
        return os.path.relpath(victim, self.root / start)

    def state(self) -> dict[str, tuple[Any, ...]]:
        out = {}
        for path in (self.dir, self.file, self.subdir, self.dir / "d"):
            st = os.lstat(path)
            out[str(path)] = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns,
                              sorted(os.listxattr(path, follow_symlinks=False)))
        out["listing"] = (sorted(os.listdir(self.dir)),)
        return out


def evil_dir(name: str) -> Entry:
    """A directory entry carrying every kind of metadata an attacker would want on a host file."""
    info = member(name, "d")
    info.mode, info.uid, info.gid, info.mtime = 0o4777, EVIL_UID, EVIL_UID, EVIL_MTIME
    info.pax_headers["SCHILY.xattr.user.evil"] = "1"
    return info, None


def d(name: str) -> Entry:
    return member(name, "d"), None


def f(name: str) -> Entry:
    return member(name), b"inside"


def sym(name: str, target: str | Path) -> Entry:
    return member(name, "l", link=str(target)), None


def hard(name: str, target: str) -> Entry:
    return member(name, "h", link=target), None


# (id, layers built from the host victims). Every case must leave the host untouched.
CASES: list[tuple[str, Callable[[Host], Layers]]] = [
    ("dir-then-absolute-symlink-to-file", lambda h: [[evil_dir("d"), sym("d", h.file)]]),
    ("dir-then-relative-symlink-to-file", lambda h: [[evil_dir("d"), sym("d", h.rel(h.file))]]),
    ("dir-then-absolute-symlink-to-dir", lambda h: [[evil_dir("d"), sym("d", h.subdir)]]),
    ("dir-then-relative-symlink-to-dir", lambda h: [[evil_dir("d"), sym("d", h.rel(h.subdir))]]),
    ("nested-dir-then-relative-symlink", lambda h: [[d("a"), evil_dir("a/d"), sym("a/d", h.rel(h.file, "a"))]]),
    ("dir-with-children-then-symlink", lambda h: [[evil_dir("d"), f("d/x"), d("d/sub"), sym("d", h.file)]]),
    ("parent-then-absolute-symlink", lambda h: [[d("a"), evil_dir("a/d"), sym("a", h.dir)]]),
    ("parent-then-relative-symlink", lambda h: [[d("a"), evil_dir("a/d"), sym("a", h.rel(h.dir))]]),
    ("dir-then-hardlink-to-symlink", lambda h: [[sym("s", h.file), evil_dir("d"), hard("d", "s")]]),
    ("dir-then-hardlink-to-relative-symlink", lambda h: [[sym("s", h.rel(h.file)), evil_dir("d"), hard("d", "s")]]),
    ("dir-replaced-twice", lambda h: [[evil_dir("d"), f("d"), evil_dir("d"), sym("d", h.file)]]),
    ("second-layer-replaces-dir", lambda h: [[evil_dir("d"), f("d/x")], [f("d/y"), sym("d", h.file)]]),
    ("second-layer-dir-then-symlink", lambda h: [[d("d")], [evil_dir("d"), sym("d", h.rel(h.file))]]),
    ("second-layer-parent-then-symlink", lambda h: [[d("a"), d("a/d")], [evil_dir("a/d"), sym("a", h.dir)]]),
    ("symlink-lower-layer-then-dir-then-symlink", lambda h: [[sym("d", h.file)], [evil_dir("d"), sym("d", h.file)]]),
]

# Only meaningful where `.wh.` names are whiteouts (an image layer, not an ADD archive).
LAYER_CASES: list[tuple[str, Callable[[Host], Layers]]] = [
    ("opaque-dir-then-symlink", lambda h: [[d("d"), f("d/x")],
                                           [evil_dir("d"), f("d/.wh..wh..opq"), sym("d", h.file)]]),
    ("whiteout-in-dir-then-symlink", lambda h: [[d("d"), f("d/x")],
                                                [evil_dir("d"), f("d/.wh.x"), sym("d", h.rel(h.file))]]),
    ("whiteout-of-dir-then-symlink", lambda h: [[evil_dir("d")], [f(".wh.d"), sym("d", h.file)]]),
    ("whiteout-in-parent-then-symlink", lambda h: [[d("a"), d("a/d"), f("a/d/x")],
                                                   [evil_dir("a/d"), f("a/d/.wh.x"), sym("a", h.dir)]]),
]


def extract_all(root: Path, layers: Layers, *, whiteouts: bool) -> None:
    for layer in layers:
        extract_layer(make_tar(*layer), root, compression="none", whiteouts=whiteouts)


@pytest.mark.parametrize("whiteouts", [pytest.param(False, id="add-archive"), pytest.param(True, id="image-layer")])
@pytest.mark.parametrize("case", [pytest.param(fn, id=name) for name, fn in CASES])
def test_replaced_dir_metadata_never_reaches_the_host(case: Callable[[Host], Layers], whiteouts: bool,
                                                      tmp_path: Path) -> None:
    host = Host(tmp_path)
    before = host.state()
    extract_all(host.root, case(host), whiteouts=whiteouts)
    assert host.state() == before


@pytest.mark.parametrize("case", [pytest.param(fn, id=name) for name, fn in LAYER_CASES])
def test_replaced_dir_metadata_with_whiteouts_never_reaches_the_host(case: Callable[[Host], Layers],
                                                                     tmp_path: Path) -> None:
    host = Host(tmp_path)
    before = host.state()
    extract_all(host.root, case(host), whiteouts=True)
    assert host.state() == before


@pytest.mark.parametrize("whiteouts", [False, True])
def test_file_replacing_dir_keeps_its_own_metadata(whiteouts: bool, tmp_path: Path) -> None:
    """Inside the root too, the dir's pending 04777 must not land on the file now at its name."""
    host = Host(tmp_path)
    extract_all(host.root, [[evil_dir("d"), f("d")]], whiteouts=whiteouts)
    st = os.lstat(host.root / "d")
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644
    assert st.st_mtime == 1_000_000 and os.listxattr(host.root / "d") == []


@pytest.mark.parametrize("whiteouts", [False, True])
def test_hardlink_replacing_dir_leaves_its_target_alone(whiteouts: bool, tmp_path: Path) -> None:
    host = Host(tmp_path)
    extract_all(host.root, [[f("f"), evil_dir("d"), hard("d", "f")]], whiteouts=whiteouts)
    st = os.lstat(host.root / "f")
    assert os.path.samefile(host.root / "d", host.root / "f")
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_mtime == 1_000_000


def test_dir_reached_through_new_symlink_is_not_the_recorded_one(tmp_path: Path) -> None:
    """`a/d/` pending, then `a -> b` and `b/d/` made implicitly: b/d must not get a/d's mode,
    even if the file system hands b/d the inode number a/d had."""
    host = Host(tmp_path)
    extract_all(host.root, [[d("a"), evil_dir("a/d"), sym("a", "b"), f("b/d/x")]], whiteouts=False)
    assert stat.S_IMODE(os.lstat(host.root / "b/d").st_mode) == 0o755
    assert os.readlink(host.root / "a") == "b"


def test_unreplaced_dir_still_gets_its_metadata(tmp_path: Path) -> None:
    """The fix must not drop metadata of a directory that is still the one created."""
    host = Host(tmp_path)
    extract_all(host.root, [[evil_dir("d"), f("d/x")]], whiteouts=True)
    st = os.lstat(host.root / "d")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o4777 and st.st_mtime == EVIL_MTIME
    assert os.getxattr(host.root / "d", "user.evil") == b"1"
    if IS_ROOT:
        assert (st.st_uid, st.st_gid) == (EVIL_UID, EVIL_UID)
