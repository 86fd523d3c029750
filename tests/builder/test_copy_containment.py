"""COPY and ADD resolve destinations and sources inside their roots (layers/securepath.py's rule):
a hostile image or context may plant symlinks; the host must be as it was afterwards."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from builder.steps.add_sources import unpack_archive
from builder.steps.copy import CopyOptions, copy_into, select_sources
from oci.errors import WharfieError


def _state(directory: Path) -> dict[str, tuple[int, int, int, bytes | str]]:
    """Every entry below `directory`: mode, owner and content (or link target)."""
    out: dict[str, tuple[int, int, int, bytes | str]] = {}
    for path in sorted(directory.rglob("*")):
        st = os.lstat(path)
        body: bytes | str = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else ""
        out[str(path.relative_to(directory))] = (st.st_mode, st.st_uid, st.st_gid, body)
    return out


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(rootfs, context, outside); outside holds what an escape would overwrite."""
    rootfs, context, outside = tmp_path / "rootfs", tmp_path / "context", tmp_path / "outside"
    for directory in (rootfs, context, outside):
        directory.mkdir()
    (outside / "target").write_text("host file")
    (context / "file.txt").write_text("from the context")
    return rootfs, context, outside


@pytest.mark.parametrize("link", ["absolute", "relative"])
def test_copy_through_a_destination_symlink_stays_in_the_rootfs(box: tuple[Path, Path, Path], link: str) -> None:
    rootfs, context, outside = box
    before = _state(outside)
    target = outside if link == "absolute" else Path("../" * 12, *outside.parts[1:])
    (rootfs / "app").symlink_to(target)
    sources = select_sources(context, ["file.txt"], what="COPY")
    copy_into(rootfs, context, sources, "/app/target", workdir="/", options=CopyOptions(), what="COPY")
    assert _state(outside) == before
    assert (rootfs / str(outside).lstrip("/") / "target").read_text() == "from the context"


def test_copy_to_dotdot_clamps_at_the_root(box: tuple[Path, Path, Path]) -> None:
    rootfs, context, outside = box
    before = _state(outside)
    sources = select_sources(context, ["file.txt"], what="COPY")
    copy_into(rootfs, context, sources, "../../../../outside/target", workdir="/", options=CopyOptions(),
              what="COPY")
    assert _state(outside) == before
    assert (rootfs / "outside/target").read_text() == "from the context"


def test_a_source_symlinked_out_of_the_context_is_not_read(box: tuple[Path, Path, Path]) -> None:
    rootfs, context, outside = box
    (context / "leak").symlink_to(outside / "target")
    sources = select_sources(context, ["leak"], what="COPY")
    with pytest.raises(WharfieError, match="symlink to nothing"):
        copy_into(rootfs, context, sources, "/leak", workdir="/", options=CopyOptions(), what="COPY")
    assert not (rootfs / "leak").exists()


def test_add_chown_of_an_archive_never_follows_its_links(box: tuple[Path, Path, Path]) -> None:
    rootfs, _, outside = box
    before = _state(outside)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        link = tarfile.TarInfo("evil")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        body = b"planted"
        entry = tarfile.TarInfo("evil/target")
        entry.size = len(body)
        tar.addfile(entry, io.BytesIO(body))
    archive = rootfs.parent / "a.tar"
    archive.write_bytes(data.getvalue())
    unpack_archive(archive, "none", rootfs / "dest", owner=(4242, 4243), rootfs=rootfs)
    assert _state(outside) == before
    inside = rootfs / "dest" / str(outside).lstrip("/") / "target"
    assert inside.read_bytes() == b"planted" and (os.lstat(inside).st_uid, os.lstat(inside).st_gid) == (4242, 4243)
