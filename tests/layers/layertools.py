"""Helpers shared by the layers tests: tree states, tar listings, hostile tar building."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layers.compress import open_decompressed
from oci.layer import StoredLayer

PRIVATE_XATTRS = ("trusted.overlay.", "user.overlay.", "security.selinux")


@dataclass(frozen=True)
class E:
    """An expected tar entry: name, type ('f' file, 'd' dir, 'l' symlink, 'h' hard link, 'c', 'b', 'p')."""

    name: str
    type: str = "f"
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    size: int = 0
    link: str = ""
    xattrs: tuple[tuple[str, bytes], ...] = ()

    def normalised(self) -> E:
        default = {"d": 0o755, "l": 0o777, "p": 0o644, "c": 0o644}.get(self.type, 0o644)
        if self.name.rsplit("/", 1)[-1].startswith(".wh."):
            default = 0
        mode = default if self.mode is None else self.mode
        return E(self.name.rstrip("/"), self.type, mode, self.uid, self.gid, self.size, self.link, self.xattrs)


_TYPE = {tarfile.REGTYPE: "f", tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l", tarfile.LNKTYPE: "h",
         tarfile.CHRTYPE: "c", tarfile.BLKTYPE: "b", tarfile.FIFOTYPE: "p"}


def read_entries(layer: StoredLayer) -> list[E]:
    with layer.open_compressed() as blob, open_decompressed(blob) as stream:
        return entries_of(stream)


def entries_of(stream: Any) -> list[E]:
    out = []
    with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape") as tar:
        for member in tar:
            xattrs = tuple(sorted((k[len("SCHILY.xattr."):], v.encode("utf-8", "surrogateescape"))
                                  for k, v in member.pax_headers.items() if k.startswith("SCHILY.xattr.")))
            out.append(E(member.name, _TYPE[member.type], member.mode, member.uid, member.gid, member.size,
                         member.linkname, xattrs))
    return out


def tree_state(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a layer must reproduce about a tree, keyed by relative path (root itself excluded)."""
    root = Path(root)
    inodes: dict[tuple[int, int], list[str]] = {}
    state: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            state[rel] = _one(path, st)
    for names in inodes.values():
        for rel in names:
            state[rel] = state[rel] + (tuple(sorted(names)),)
    return state


def _one(path: str, st: os.stat_result) -> tuple[Any, ...]:
    content = None
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        content = digest.hexdigest()
    link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
    rdev = st.st_rdev if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else 0
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        names = []
    xattrs = tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in names if not n.startswith(PRIVATE_XATTRS))
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, content, link, rdev,
            xattrs, int(st.st_mtime))


def copy_tree(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", "--preserve=all", f"{src}/.", str(dst)], check=True)


def diff_states(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {a.get(key)} != {b.get(key)}")
    return out


def make_tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buffer.seek(0)
    return buffer


def member(name: str, kind: str = "f", *, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}[kind]
    info.linkname = link
    info.mode = 0o755 if kind == "d" else mode
    info.mtime = 1_000_000
    return info
