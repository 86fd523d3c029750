"""Resource limits of layer extraction (issue #17): each one refuses with an error naming it,
and the value at the limit itself still extracts."""

from __future__ import annotations

import io
import os
import signal
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest
from layertools import make_tar, member

from layers.extract import TarLimits, extract_layer
from oci.errors import WharfieError


def extract(root: Path, data: bytes, **options: object) -> None:
    extract_layer(io.BytesIO(data), root, compression="none", **options)  # type: ignore[arg-type]


def tar(*entries: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    return make_tar(*entries).getvalue()


def pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode("utf-8", "surrogateescape")
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def raw_header(kind: bytes, data: bytes, name: str = "././@PaxHeader") -> bytes:
    """One header of type `kind` and its data, as tarfile would not write it (chains, sizes)."""
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(data)
    return info.tobuf(tarfile.USTAR_FORMAT) + data + bytes(-len(data) % 512)


END = bytes(1024)


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise AssertionError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- path length ---------------------------------------------------------------------------------

def long_name(size: int) -> str:
    """A relative name of exactly `size` bytes, in components the file system accepts (<= 255)."""
    parts, left = [], size
    while left > 0:
        part = min(200, left)
        if left - part == 1:  # never leave a 1-byte remainder: it could not follow a "/"
            part -= 1
        parts.append("p" * part)
        left -= part + 1
    name = "/".join(parts)
    return name[:size] if len(name) > size else name + "q" * (size - len(name))


def read_deep(root: Path, name: str) -> bytes:
    """Read root/name component by component: the whole path may be longer than the kernel takes."""
    fd = os.open(root, os.O_PATH)
    try:
        for part in name.split("/")[:-1]:
            child = os.open(part, os.O_PATH | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open(name.split("/")[-1], os.O_RDONLY, dir_fd=fd)
    finally:
        os.close(fd)
    with os.fdopen(leaf, "rb") as handle:
        return handle.read()


def test_name_at_the_path_length_limit_extracts(tmp_path: Path) -> None:
    name = long_name(4096)
    assert len(name.encode()) == 4096
    extract(tmp_path, tar((member(name), b"x")))
    assert read_deep(tmp_path, name) == b"x"


def test_name_over_the_path_length_limit_is_refused(tmp_path: Path) -> None:
    name = long_name(4097)
    with pytest.raises(WharfieError, match=r"name of 4097 bytes, over the path length limit of 4096 bytes"):
        extract(tmp_path, tar((member(name), b"x")))
    assert list(tmp_path.iterdir()) == []


def test_link_target_over_the_path_length_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WharfieError, match=r"'l': link target of 5000 bytes, over the path length limit"):
        extract(tmp_path, tar((member("l", "l", link="t" * 5000), None)))


def test_nul_byte_in_a_pax_path_is_refused(tmp_path: Path) -> None:
    data = raw_header(tarfile.XHDTYPE, pax_record("path", "a\x00b")) + tar((member("x"), b""))
    with pytest.raises(WharfieError, match="NUL byte in its name"):
        extract(tmp_path, data)


# -- depth ---------------------------------------------------------------------------------------

def test_name_at_the_depth_limit_extracts(tmp_path: Path) -> None:
    name = "/".join(["d"] * 256)
    extract(tmp_path, tar((member(name), b"deep")))
    assert (tmp_path / name).read_bytes() == b"deep"


def test_name_over_the_depth_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WharfieError, match="257 path components, over the path depth limit of 256"):
        extract(tmp_path, tar((member("/".join(["d"] * 257)), b"deep")))
    assert list(tmp_path.iterdir()) == []


def test_depth_counts_where_an_entry_lands_through_symlinks(tmp_path: Path) -> None:
    """`l -> a/b/c` then `l/x/y`: a 3-component name landing 5 deep (the real tree's depth, which
    recursive removal later walks)."""
    limits = TarLimits(depth=4)
    entries = [(member("a/b/c", "d"), None), (member("l", "l", link="a/b/c"), None)]
    extract(tmp_path / "four", tar(*entries, (member("l/x"), b"4 deep")), limits=limits)
    assert (tmp_path / "four/a/b/c/x").read_bytes() == b"4 deep"
    with pytest.raises(WharfieError, match="'l/x/y': lands more than 4 components deep, over the path depth "
                                           "limit of 4"):
        extract(tmp_path / "five", tar(*entries, (member("l/x/y"), b"5 deep")), limits=limits)
    assert not (tmp_path / "five/a/b/c/x").exists()  # refused before the too deep parent is made


# -- entries -------------------------------------------------------------------------------------

def test_entries_over_the_limit_are_refused(tmp_path: Path) -> None:
    limits = TarLimits(entries=3)
    extract(tmp_path / "three", tar(*[(member(f"f{i}"), b"") for i in range(3)]), limits=limits)
    with pytest.raises(WharfieError, match="more than 3 entries, over the entries per layer limit of 3"):
        extract(tmp_path / "four", tar(*[(member(f"f{i}"), b"") for i in range(4)]), limits=limits)


def test_default_limits() -> None:
    """The defaults the errors quote: PATH_MAX, 256 levels, a million entries, Go archive/tar's 1 MiB."""
    limits = TarLimits()
    assert (limits.path_bytes, limits.depth, limits.entries, limits.header_record_bytes) == \
        (4096, 256, 1_000_000, 1 << 20)


# -- PAX and GNU header records ------------------------------------------------------------------

@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME])
def test_header_record_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path, kind: bytes) -> None:
    # Only the header claims the size: the refusal must come before tarfile tries to read 2 MiB.
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = kind, 2 << 20
    with pytest.raises(WharfieError, match=r"a 2097152-byte header record, over the header record size "
                                           r"limit of 1048576 bytes"):
        extract(tmp_path, info.tobuf(tarfile.USTAR_FORMAT) + END)


def test_chained_pax_headers_are_refused_not_recursed_into(tmp_path: Path) -> None:
    """tarfile recurses once per PAX header before an entry: 5,000 of them would be a RecursionError."""
    chain = raw_header(tarfile.XHDTYPE, pax_record("comment", "x")) * 5000
    with pytest.raises(WharfieError, match="over the header chain limit of 8"):
        extract(tmp_path, chain + tar((member("x"), b"")))


def test_a_realistic_header_chain_extracts(tmp_path: Path) -> None:
    """global PAX + PAX + GNU long name + GNU long link before one entry: well inside the limit."""
    data = (raw_header(tarfile.XGLTYPE, pax_record("comment", "global"))
            + raw_header(tarfile.XHDTYPE, pax_record("mtime", "5"))
            + raw_header(tarfile.GNUTYPE_LONGNAME, b"long-" * 30 + b"\x00", "././@LongLink")
            + raw_header(tarfile.GNUTYPE_LONGLINK, b"target\x00", "././@LongLink"))
    link = tarfile.TarInfo("short")
    link.type = tarfile.SYMTYPE
    data += link.tobuf(tarfile.GNU_FORMAT) + END
    extract(tmp_path, data)
    assert (tmp_path / ("long-" * 30)).readlink() == Path("target")


def test_global_pax_headers_over_the_limit_are_refused(tmp_path: Path) -> None:
    limits = TarLimits(global_header_bytes=2500)
    one = raw_header(tarfile.XGLTYPE, pax_record("comment", "g" * 990)) + raw_header(tarfile.REGTYPE, b"", "x")
    extract(tmp_path / "two", one * 2 + END, limits=limits)
    with pytest.raises(WharfieError, match=r"bytes of global PAX headers, over the global header size limit of "
                                           r"2500 bytes"):
        extract(tmp_path / "three", one * 3 + END, limits=limits)


# -- sparse entries ------------------------------------------------------------------------------

def gnu_sparse_1_0(name: str, realsize: int, segments: list[tuple[int, bytes]]) -> bytes:
    """A GNU tar PAX sparse entry, format 1.0: the map heads the data, only the segments are stored."""
    sparse_map = f"{len(segments)}\n" + "".join(f"{offset}\n{len(data)}\n" for offset, data in segments)
    body = sparse_map.encode() + bytes(-len(sparse_map) % 512) + b"".join(data for _, data in segments)
    records = (pax_record("GNU.sparse.major", "1") + pax_record("GNU.sparse.minor", "0")
               + pax_record("GNU.sparse.name", name) + pax_record("GNU.sparse.realsize", str(realsize)))
    return raw_header(tarfile.XHDTYPE, records) + raw_header(tarfile.REGTYPE, body, f"GNUSparseFile.0/{name}")


def test_sparse_entry_writes_only_its_segments(tmp_path: Path) -> None:
    data = gnu_sparse_1_0("s", 64 << 20, [(0, b"head"), ((32 << 20) + 3, b"middle"), ((64 << 20) - 3, b"end")])
    extract(tmp_path, data + END)
    content = (tmp_path / "s").read_bytes()
    assert len(content) == 64 << 20
    assert content[:4] == b"head" and content[(32 << 20) + 3:(32 << 20) + 9] == b"middle"
    assert content[-3:] == b"end" and content.count(0) == len(content) - 13


def test_huge_sparse_entry_is_no_hang(tmp_path: Path) -> None:
    """1 EiB of holes: never read as zeros (hours), refused by the file system at once."""
    with time_limit(20), pytest.raises(WharfieError, match="'s'.*File too large"):
        extract(tmp_path, gnu_sparse_1_0("s", 1 << 60, [(0, b"x")]) + END)


@pytest.mark.parametrize("kind", [b"Z", tarfile.REGTYPE])
def test_header_claiming_a_huge_entry_is_no_hang(tmp_path: Path, kind: bytes) -> None:
    """A 2**88-byte entry (GNU base-256 size) in a 2 KiB layer: skipping it must stop at the end of the
    data (tarfile's own stream mode kept reading nothing for ever)."""
    header = bytearray(raw_header(kind, b"", "huge"))
    header[124:136] = b"\x80" + b"\xff" * 11
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\x00 " % sum(header[:512])
    with time_limit(20), pytest.raises(WharfieError, match="corrupt layer.*(unexpected end|out of range)"):
        extract(tmp_path, bytes(header) + END)


def test_sparse_map_out_of_order_is_refused(tmp_path: Path) -> None:
    data = gnu_sparse_1_0("s", 100, [(50, b"b"), (10, b"a")])
    with pytest.raises(WharfieError, match="sparse map out of order"):
        extract(tmp_path, data + END)


# -- trees deeper than the limit, made by a RUN step ---------------------------------------------

def make_deep_tree(root: Path, top: str, depth: int) -> None:
    """top/d/d/.../d/f, `depth` directories below top, made by descriptor (the path is too long)."""
    fd = os.open(root, os.O_PATH)
    os.mkdir(top, dir_fd=fd)
    for name in [top] + ["d"] * depth:
        if name == "d":
            os.mkdir("d", dir_fd=fd)
        child = os.open(name, os.O_PATH | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    os.close(fd)


@pytest.mark.parametrize("layer", [pytest.param([(member("top"), b"file now")], id="replaced-by-a-file"),
                                   pytest.param([(member(".wh.top"), b"")], id="whiteout")])
def test_tree_deeper_than_python_recursion_is_removed(tmp_path: Path,
                                                      layer: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    """A RUN step can make a tree 1,100 deep; a later layer removing it must not hit RecursionError."""
    make_deep_tree(tmp_path, "top", 1100)  # Python's recursion limit is 1000
    extract(tmp_path, tar(*layer))
    assert sorted(os.listdir(tmp_path)) == (["top"] if layer[0][0].name == "top" else [])


# -- work per entry ------------------------------------------------------------------------------

def test_repeated_opaque_markers_do_not_walk_the_layer_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """N files then N opaque markers of their directory: each marker after the first has nothing
    lower left to remove; walking the N files again for each would cost N*N."""
    extract(tmp_path, tar((member("dir", "d"), None), (member("dir/lower"), b"old")))
    listings: list[object] = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda fd: listings.append(fd) or real_listdir(fd))
    files = [(member(f"dir/f{i}"), b"") for i in range(300)]
    markers = [(member("dir/.wh..wh..opq"), b"") for _ in range(300)]
    extract(tmp_path, tar((member("dir", "d"), None), *files, *markers))
    assert sorted(real_listdir(tmp_path / "dir")) == sorted(f"f{i}" for i in range(300))
    assert len(listings) == 1


# -- a layer cut or corrupted between entries ----------------------------------------------------

def two_files() -> bytes:
    return raw_header(tarfile.REGTYPE, b"one", "one") + raw_header(tarfile.REGTYPE, b"two", "two")


def test_bad_checksum_after_the_first_entry_is_corrupt_not_the_end(tmp_path: Path) -> None:
    """tarfile alone ends the archive there, silently dropping the rest of the layer."""
    data = bytearray(two_files() + END)
    data[1024 + 148] ^= 1  # the second header's checksum
    with pytest.raises(WharfieError, match="corrupt layer: bad checksum"):
        extract(tmp_path, bytes(data))


def test_layer_cut_inside_a_header_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(WharfieError, match="corrupt layer: truncated header"):
        extract(tmp_path, two_files()[:1024 + 200])


def test_layer_ending_between_entries_without_end_blocks_is_complete(tmp_path: Path) -> None:
    """As Go's archive/tar: the end of the data right after an entry's padding is a clean end."""
    extract(tmp_path, two_files())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
