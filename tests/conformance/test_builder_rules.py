"""Unit checks of the docker rules the conformance suite found wharfie breaking, fixed in builder/steps/copy.py
and userdb.py.

Each rule also has a conformance case (named in the test) proving it against
the peer builder; these pin the functions themselves, fast and without a build.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from builder.steps.copy import CopyOptions, copy_into, make_parents
from builder.steps.userdb import resolve_chown, resolve_exec_user


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:2000:App:/home/app:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\ngrp:x:2000:\nextra:x:3000:app\nother:x:4000:root,app\n")
    return root


def _owner_mode(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_supplementary_groups_start_with_the_primary_gid(rootfs: Path) -> None:
    """Case user-name / user-uid-group: BuildKit's ensureAdditionalGids."""
    assert resolve_exec_user(rootfs, "app").groups == (2000, 3000, 4000)
    assert resolve_exec_user(rootfs, "1000").groups == (2000, 3000, 4000)
    assert resolve_exec_user(rootfs, "app:extra").groups == (3000,)
    assert resolve_exec_user(rootfs, "1000:3000").groups == (3000,)
    unknown = resolve_exec_user(rootfs, "4321")
    assert (unknown.uid, unknown.gid, unknown.groups) == (4321, 0, (0,))


def test_chown_user_name_alone_takes_its_primary_group(rootfs: Path) -> None:
    """Case copy-chown-name: BuildKit's readUser; a numeric uid alone gives the same gid."""
    assert resolve_chown(rootfs, "app") == (1000, 2000)
    assert resolve_chown(rootfs, "app:extra") == (1000, 3000)
    assert resolve_chown(rootfs, "app:55") == (1000, 55)
    assert resolve_chown(rootfs, "1000") == (1000, 1000)
    assert resolve_chown(rootfs, "1234") == (1234, 1234)


def test_parents_are_owned_by_the_chown_user(rootfs: Path) -> None:
    """Case copy-chown-name / copy-chown-id: fsutil's MkdirAll(dir, 0755, chown)."""
    make_parents(rootfs, rootfs / "a/b/file", uid=7, gid=8)
    assert _owner_mode(rootfs / "a") == (7, 8, 0o755)
    assert _owner_mode(rootfs / "a/b") == (7, 8, 0o755)


def _context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "dir/sub").mkdir(parents=True)
    (ctx / "dir/sub/f").write_text("f\n")
    os.chmod(ctx / "dir", 0o700)
    os.chmod(ctx / "dir/sub", 0o750)
    (ctx / "target.txt").write_text("target\n")
    os.symlink("target.txt", ctx / "link")
    os.symlink("dir", ctx / "dirlink")
    return ctx


def test_directory_destination_is_made_like_a_parent(rootfs: Path, tmp_path: Path) -> None:
    """Case copy-chmod: neither the source directory's mode nor --chmod applies to the destination itself."""
    ctx = _context(tmp_path)
    copy_into(rootfs, ctx, [ctx / "dir"], "/modes/", workdir="/", options=CopyOptions(uid=5, gid=6, chmod=0o740),
              what="COPY")
    assert _owner_mode(rootfs / "modes") == (5, 6, 0o755)
    assert _owner_mode(rootfs / "modes/sub") == (5, 6, 0o740)
    assert _owner_mode(rootfs / "modes/sub/f") == (5, 6, 0o740)


def test_existing_subdirectories_take_the_source_metadata(rootfs: Path, tmp_path: Path) -> None:
    """Case copy-merge-existing: the top destination is kept, what is below it is overwritten."""
    ctx = _context(tmp_path)
    (rootfs / "target/sub").mkdir(parents=True)
    for path in (rootfs / "target", rootfs / "target/sub"):
        os.chown(path, 5, 6)
        os.chmod(path, 0o700)
    copy_into(rootfs, ctx, [ctx / "dir"], "/target", workdir="/", options=CopyOptions(), what="COPY")
    assert _owner_mode(rootfs / "target") == (5, 6, 0o700)
    assert _owner_mode(rootfs / "target/sub") == (0, 0, 0o750)


def test_a_symlink_named_as_source_is_followed(rootfs: Path, tmp_path: Path) -> None:
    """Case copy-symlink-source: BuildKit copies with FollowSymlinks for the named sources."""
    ctx = _context(tmp_path)
    copy_into(rootfs, ctx, [ctx / "link"], "/followed.txt", workdir="/", options=CopyOptions(), what="COPY")
    copy_into(rootfs, ctx, [ctx / "link"], "/into/", workdir="/", options=CopyOptions(), what="COPY")
    copy_into(rootfs, ctx, [ctx / "dirlink"], "/contents/", workdir="/", options=CopyOptions(), what="COPY")
    assert not (rootfs / "followed.txt").is_symlink() and (rootfs / "followed.txt").read_text() == "target\n"
    assert (rootfs / "into/link").read_text() == "target\n" and not (rootfs / "into/link").is_symlink()
    assert (rootfs / "contents/sub/f").read_text() == "f\n"


def test_keep_owner_keeps_the_source_owners(rootfs: Path, tmp_path: Path) -> None:
    """Case copy-from-stage-owners: COPY --from without --chown (needs stage.py to ask for it)."""
    stage = tmp_path / "stage"
    (stage / "out/sub").mkdir(parents=True)
    (stage / "out/sub/data").write_text("d\n")
    for path in (stage / "out/sub", stage / "out/sub/data"):
        os.chown(path, 12, 34)
    copy_into(rootfs, stage, [stage / "out"], "/kept/", workdir="/", options=CopyOptions(keep_owner=True),
              what="COPY")
    assert _owner_mode(rootfs / "kept")[:2] == (0, 0)
    assert _owner_mode(rootfs / "kept/sub")[:2] == (12, 34)
    assert _owner_mode(rootfs / "kept/sub/data")[:2] == (12, 34)


def test_add_archive_with_owner_owns_destination_and_entries(rootfs: Path, tmp_path: Path) -> None:
    """Case add-archive-chown (needs stage.py to pass the owner): BuildKit's unpack with ChownOpts."""
    import tarfile

    from builder.steps.add_sources import archive_kind, unpack_archive

    archive = tmp_path / "app.tar"
    payload = tmp_path / "payload"
    (payload / "dir").mkdir(parents=True)
    (payload / "dir/tool").write_text("#!/bin/sh\n")
    os.chmod(payload / "dir/tool", 0o4755)
    (payload / ".wh.plain").write_text("not a whiteout\n")
    with tarfile.open(archive, "w") as tar:
        tar.add(payload, arcname=".", filter=lambda info: (setattr(info, "uid", 1001), info)[1])
    (rootfs / "opt/app").mkdir(parents=True)
    (rootfs / "opt/app/plain").write_text("kept\n")
    assert archive_kind(archive) == "none"
    unpack_archive(archive, "none", rootfs / "opt/app/new", owner=(7, 8), rootfs=rootfs)
    assert _owner_mode(rootfs / "opt/app/new") == (7, 8, 0o755)
    assert _owner_mode(rootfs / "opt/app/new/dir/tool") == (7, 8, 0o4755)
    assert (rootfs / "opt/app/new/.wh.plain").read_text() == "not a whiteout\n"
    unpack_archive(archive, "none", rootfs / "opt/app")  # no owner: entries keep the archive's
    assert _owner_mode(rootfs / "opt/app/dir/tool")[:2] == (1001, 0)
    assert (rootfs / "opt/app/plain").read_text() == "kept\n"
    assert _owner_mode(rootfs / "opt")[:2] == (0, 0)
