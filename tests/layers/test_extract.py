"""Extraction semantics: whiteouts, opaque dirs in any order, symlinked parents, metadata."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from layertools import make_tar, member

from layers.extract import extract_layer

IS_ROOT = os.geteuid() == 0


def apply(root: Path, *members: tuple[tarfile.TarInfo, bytes | None], **options: object) -> None:
    extract_layer(make_tar(*members), root, compression="none", **options)  # type: ignore[arg-type]


def f(name: str, data: bytes = b"data", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes | None]:
    return member(name, mode=mode), data


def d(name: str) -> tuple[tarfile.TarInfo, bytes | None]:
    return member(name, "d"), None


def lower(root: Path) -> None:
    apply(root, d("dir"), f("dir/old1"), d("dir/sub"), f("dir/sub/old2"), f("keep"), f("gone"))


def listing(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, n), root) for n in dirnames + filenames]
    return sorted(out)


def test_whiteout_removes_lower_file_and_dir(tmp_path: Path) -> None:
    lower(tmp_path)
    apply(tmp_path, f(".wh.gone"), f("dir/.wh.sub"))
    assert listing(tmp_path) == ["dir", "dir/old1", "keep"]


@pytest.mark.parametrize("order", ["marker-first", "marker-last"])
def test_opaque_keeps_this_layers_entries_in_any_order(tmp_path: Path, order: str) -> None:
    lower(tmp_path)
    entries = [d("dir"), d("dir/sub"), f("dir/sub/new"), f("dir/new")]
    marker = f("dir/.wh..wh..opq", b"")
    apply(tmp_path, *([marker] + entries if order == "marker-first" else entries + [marker]))
    assert listing(tmp_path) == ["dir", "dir/new", "dir/sub", "dir/sub/new", "gone", "keep"]


def test_whiteout_after_add_in_same_layer_only_hits_lower(tmp_path: Path) -> None:
    lower(tmp_path)
    apply(tmp_path, d("dir"), d("dir/sub"), f("dir/sub/new"), f("dir/.wh.sub"))
    assert listing(tmp_path) == ["dir", "dir/old1", "dir/sub", "dir/sub/new", "gone", "keep"]


def test_whiteout_of_missing_path_is_fine(tmp_path: Path) -> None:
    apply(tmp_path, f("nothing/here/.wh.x"), f(".wh.absent"))
    assert listing(tmp_path) == []


def test_dir_replaces_file_and_file_replaces_dir(tmp_path: Path) -> None:
    lower(tmp_path)
    apply(tmp_path, f("dir", b"now a file"), d("keep"), f("keep/inside"))
    assert (tmp_path / "dir").read_bytes() == b"now a file"
    assert (tmp_path / "keep/inside").is_file()


def test_usrmerge_symlink_parent_is_followed_inside_root(tmp_path: Path) -> None:
    apply(tmp_path, d("usr"), d("usr/lib"), (member("lib", "l", link="usr/lib"), None))
    apply(tmp_path, d("lib"), f("lib/x.so", b"elf"))
    # The dir entry "lib" replaces the symlink, as docker does without --keep-dirlinks...
    assert (tmp_path / "lib").is_dir() and not (tmp_path / "lib").is_symlink()


def test_symlink_parent_without_dir_entry_lands_in_target(tmp_path: Path) -> None:
    apply(tmp_path, d("usr"), d("usr/lib"), (member("lib", "l", link="/usr/lib"), None))
    apply(tmp_path, f("lib/x.so", b"elf"))
    assert (tmp_path / "usr/lib/x.so").read_bytes() == b"elf"
    assert (tmp_path / "lib").is_symlink()


def test_missing_parents_are_created(tmp_path: Path) -> None:
    apply(tmp_path, f("a/b/c", b"x"))
    assert (tmp_path / "a/b/c").read_bytes() == b"x"
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o755


def test_modes_times_and_setuid_restored(tmp_path: Path) -> None:
    info, data = f("bin/su", b"su", 0o4755)
    dir_info = member("bin", "d")
    dir_info.mode, dir_info.mtime = 0o555, 12345
    apply(tmp_path, (dir_info, None), (info, data))
    st = os.stat(tmp_path / "bin/su")
    assert stat.S_IMODE(st.st_mode) == 0o4755 and st.st_mtime == 1_000_000
    bin_st = os.stat(tmp_path / "bin")
    assert stat.S_IMODE(bin_st.st_mode) == 0o555 and bin_st.st_mtime == 12345


def test_parent_mtime_kept_when_not_in_layer(tmp_path: Path) -> None:
    lower(tmp_path)
    os.utime(tmp_path / "dir", (5, 5))
    apply(tmp_path, f("dir/.wh.old1"), f("dir/added"))
    assert os.stat(tmp_path / "dir").st_mtime == 5


def test_pax_fractional_mtime(tmp_path: Path) -> None:
    info, data = f("x")
    info.pax_headers["mtime"] = "1700000000.123456789"
    apply(tmp_path, (info, data))
    assert os.stat(tmp_path / "x").st_mtime_ns == 1_700_000_000_123_456_789


def test_ownership_recorded_when_not_applied(tmp_path: Path) -> None:
    info, data = f("owned")
    info.uid, info.gid = 1234, 5678
    owners: dict[str, tuple[int, int]] = {}
    apply(tmp_path, (info, data), same_owner=False, owners=owners)
    assert owners == {"owned": (1234, 5678)}
    assert os.stat(tmp_path / "owned").st_uid == os.geteuid()


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_ownership_and_capability_applied_as_root(tmp_path: Path) -> None:
    import struct

    cap = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)
    info, data = f("ping", b"p", 0o4755)
    info.uid, info.gid = 1000, 1000
    info.pax_headers["SCHILY.xattr.security.capability"] = cap.decode("utf-8", "surrogateescape")
    apply(tmp_path, (info, data))
    st = os.stat(tmp_path / "ping")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o4755)
    assert os.getxattr(tmp_path / "ping", "security.capability") == cap


def test_libarchive_xattrs(tmp_path: Path) -> None:
    info, data = f("x")
    info.pax_headers["LIBARCHIVE.xattr.user.note"] = "aGVsbG8"  # base64 of "hello", unpadded
    apply(tmp_path, (info, data))
    assert os.getxattr(tmp_path / "x", "user.note") == b"hello"


def test_hardlinks_recreated(tmp_path: Path) -> None:
    apply(tmp_path, d("bin"), f("bin/busybox", b"bb"), (member("bin/sh", "h", link="bin/busybox"), None))
    assert os.path.samefile(tmp_path / "bin/sh", tmp_path / "bin/busybox")


def test_fifo_and_device(tmp_path: Path) -> None:
    fifo = member("fifo")
    fifo.type = tarfile.FIFOTYPE
    dev = member("null")
    dev.type, dev.devmajor, dev.devminor, dev.mode = tarfile.CHRTYPE, 1, 3, 0o666
    apply(tmp_path, (fifo, None), (dev, None))
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)
    if IS_ROOT:
        assert os.lstat(tmp_path / "null").st_rdev == os.makedev(1, 3)


def test_device_skipped_with_warning_in_user_namespace(tmp_path: Path) -> None:
    """In a user namespace mknod is refused: the entry is skipped, the rest applied."""
    paths = [str(Path(__file__).parent), str(Path(__file__).parents[2])]
    script = (
        "import sys, tarfile\n"
        f"sys.path[:0] = {paths!r}\n"
        "from layertools import make_tar, member\n"
        "from layers.extract import extract_layer\n"
        "dev = member('null'); dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3\n"
        f"extract_layer(make_tar((dev, None), (member('after'), b'x')), {str(tmp_path)!r}, compression='none')\n"
    )
    result = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c", script],
                            check=False, capture_output=True, text=True)
    if result.returncode and "unshare" in result.stderr:
        pytest.skip(f"no user namespaces: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert "skipping device node" in result.stderr
    assert listing(tmp_path) == ["after"]


def test_large_layer_memory_is_bounded(tmp_path: Path) -> None:
    """tarfile would keep every member (about 7 MB here); the extractor must not."""
    import tracemalloc

    members = [f(f"d{i // 1000}/f{i}", b"") for i in range(10_000)]
    tar = make_tar(*members)
    tracemalloc.start()
    extract_layer(tar, tmp_path, compression="none")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # The set of created paths stays (opaque whiteouts need it); TarInfo objects (~1 KiB each) must not.
    assert peak < 4 << 20


def test_gnu_sparse_archive(tmp_path: Path) -> None:
    """GNU tar's PAX sparse format (1.0) is read, and holes stay holes."""
    source = tmp_path / "src"
    source.mkdir()
    with open(source / "sparse", "wb") as handle:
        handle.write(b"start")
        handle.seek(64 << 20)
        handle.write(b"end")
    archive = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=posix", "-cf", str(archive), "-C", str(source), "sparse"],
                   check=True)
    out = tmp_path / "out"
    with open(archive, "rb") as blob:
        extract_layer(blob, out)
    data = (out / "sparse").read_bytes()
    assert data[:5] == b"start" and data[-3:] == b"end" and len(data) == (64 << 20) + 3
    assert os.stat(out / "sparse").st_blocks * 512 < 4 << 20


UNPRIVILEGED_SCRIPT = """
import json, sys, tarfile
sys.path[:0] = {paths!r}
from layertools import make_tar, member
from layers.extract import extract_layer
ro = member("ro", "d"); ro.mode = 0o555
secret = member("ro/secret", mode=0o000)
owned = member("owned"); owned.uid, owned.gid = 1000, 1001
suid = member("suid", mode=0o4755)
unreadable = member("wx", "d"); unreadable.mode = 0o311
owners = {{}}
extract_layer(make_tar((ro, None), (secret, b"s"), (owned, b"o"), (suid, b"x"), (unreadable, None)), {out!r},
              compression="none", owners=owners)
# A later layer lists the directory we may not read again and writes into it: its metadata
# goes through an O_PATH descriptor.
again = member("wx", "d"); again.mode, again.mtime = 0o311, 4242
extract_layer(make_tar((again, None), (member("wx/new"), b"n")), {out!r}, compression="none")
print(json.dumps(owners, sort_keys=True))
"""


@pytest.mark.skipif(not IS_ROOT, reason="needs root to drop its capabilities")
def test_unprivileged_extraction_records_owners_and_survives_read_only_dirs(tmp_path: Path) -> None:
    """As root without capabilities (no CAP_CHOWN, no CAP_DAC_OVERRIDE), like an unprivileged CI job."""
    out = tmp_path / "out"
    paths = [str(Path(__file__).parent), str(Path(__file__).parents[2])]
    script = UNPRIVILEGED_SCRIPT.format(paths=paths, out=str(out))
    result = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-c", script],
                            check=False, capture_output=True, text=True)
    if result.returncode and "setpriv" in result.stderr:
        pytest.skip(f"cannot drop capabilities here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert "cannot set ownership" in result.stderr
    owners = json.loads(result.stdout.strip().splitlines()[-1])
    assert owners["owned"] == [1000, 1001]
    assert stat.S_IMODE(os.stat(out / "ro").st_mode) == 0o555
    assert (out / "ro/secret").read_bytes() == b"s"
    assert stat.S_IMODE(os.stat(out / "suid").st_mode) == 0o4755
    assert os.stat(out / "owned").st_uid == 0
    wx = os.stat(out / "wx")
    assert stat.S_IMODE(wx.st_mode) == 0o311 and wx.st_mtime == 4242
    assert (out / "wx/new").read_bytes() == b"n"


def test_owner_replaces_every_entrys_owner(tmp_path: Path) -> None:
    """ADD --chown: the archive's owners are replaced; chown must not cost the setuid bit."""
    suid = member("bin/tool", mode=0o4755)
    suid.uid = suid.gid = 7
    owners: dict[str, tuple[int, int]] = {}
    apply(tmp_path, d("bin"), (suid, b"x"), (member("bin/sh", "l", link="tool"), None),
          owner=(1234, 5678), owners=owners)
    if IS_ROOT:
        for name in ("bin", "bin/tool", "bin/sh"):
            st = os.lstat(tmp_path / name)
            assert (st.st_uid, st.st_gid) == (1234, 5678), name
        assert owners == {}
    else:
        assert owners == {"bin": (1234, 5678), "bin/tool": (1234, 5678), "bin/sh": (1234, 5678)}
    assert stat.S_IMODE(os.stat(tmp_path / "bin/tool").st_mode) == 0o4755
