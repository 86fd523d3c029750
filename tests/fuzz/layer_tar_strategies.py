"""Hypothesis strategies for hostile layer tars (issue #17): entries, then byte-level mutations.

An archive is drawn as a list of entry specs (`Spec`), written with tarfile in
PAX, GNU or USTAR format (plus hand-made GNU sparse headers tarfile cannot
write), and then mutated: header fields overwritten with the checksum fixed
(so the parser goes past the checksum test), bytes flipped, blocks duplicated,
the archive cut short. Names and link targets are drawn from components an
attacker likes (`..`, `.wh.` prefixes, long and non-UTF-8 names) and from the
placeholders `ABS_CANARY` (the absolute path of the canary directory, filled
in when the test runs) and `REL_CANARY` (the same, relative to the root).
"""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass, field

import zstandard
from hypothesis import strategies as st

ABS_CANARY = "@ABS_CANARY@"
REL_CANARY = "../../canary"  # the fuzz tests put the root at TMP/scratch/root, the canary at TMP/canary
BLOCK = 512

COMPONENTS = [
    "a", "b", "d", "etc", "..", ".", "", ".wh.a", ".wh.b", ".wh..wh..opq", ".wh.", ".wh..", ".wh...",
    ".wh..wh.x", "x" * 255, "y" * 256, "é", "\udcff\udcfe", "sp ace", "new\nline", "nul\x00byte",
]
LINK_TARGETS = ["a", "b", "d", "a/b", "..", "../..", "/", "/etc", ".", "", REL_CANARY, f"{REL_CANARY}/target",
                ABS_CANARY, f"{ABS_CANARY}/target", f"{ABS_CANARY}/dir", "a/../..", "x" * 300]
KINDS = ["file", "dir", "symlink", "hardlink", "fifo", "char", "block", "whiteout", "opaque", "unknown"]
TYPEFLAG = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
            "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE,
            "block": tarfile.BLKTYPE, "whiteout": tarfile.REGTYPE, "opaque": tarfile.REGTYPE,
            "unknown": b"Z"}
PAX_KEYS = ["path", "linkpath", "size", "uid", "gid", "mtime", "atime", "uname", "hdrcharset",
            "SCHILY.xattr.user.x", "SCHILY.xattr.trusted.overlay.opaque", "SCHILY.xattr.security.capability",
            "SCHILY.xattr.user.a\x00b", "SCHILY.xattr.", "SCHILY.xattr.user." + "k" * 300, "SCHILY.xattr.x",
            "LIBARCHIVE.xattr.user.y", "LIBARCHIVE.xattr.user%00y", "GNU.sparse.map", "GNU.sparse.size", "GNU.sparse.realsize",
            "GNU.sparse.major", "GNU.sparse.minor", "GNU.sparse.name", "GNU.sparse.numblocks", "comment"]
PAX_VALUES = ["0", "1", "-1", "dmFsdWU", "AAAA", "18446744073709551616", "1e999", "nan", "inf", "1.5", "", "a", "0,0", "1,2,3",
              "0,10,20", "999999999999,1", "BINARY", "/etc/passwd", "../../x", ABS_CANARY, "x" * 5000]
# Where the fields of a ustar header live: (offset, length).
FIELDS = {"name": (0, 100), "mode": (100, 8), "uid": (108, 8), "gid": (116, 8), "size": (124, 12),
          "mtime": (136, 12), "typeflag": (156, 1), "linkname": (157, 100), "magic": (257, 8),
          "devmajor": (329, 8), "devminor": (337, 8), "prefix": (345, 155), "sparse": (386, 96),
          "isextended": (482, 1), "realsize": (483, 12)}
FIELD_VALUES = [b"", b"0", b"7777777", b"77777777777", b"\x80" + b"\xff" * 11, b"\xff" * 12, b"-1", b"..",
                b"../../canary", b"/", b"L", b"K", b"x", b"g", b"S", b"5", b"2", b"1", b"ustar\x0000",
                b"ustar  \x00", b"\x00" * 12, b"99999999999"]


@dataclass
class Spec:
    """One archive entry as drawn, before serialisation."""

    kind: str
    name: str
    link: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    data: bytes = b""
    pax: dict[str, str] = field(default_factory=dict)
    sparse: tuple[int, tuple[tuple[int, int], ...]] | None = None  # (realsize, (offset, length)...), GNU 1.0
    old_sparse: bool = False  # the GNU 'S' header instead


names = st.one_of(
    st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=5).map("/".join),
    st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts)),
    st.just(ABS_CANARY + "/target"),
    st.sampled_from([2, 30, 256, 257, 2049]).map(lambda depth: "/".join(["d"] * depth)),  # deep, long names
    st.text(max_size=40),
)
link_targets = st.one_of(st.sampled_from(LINK_TARGETS), names)


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    kind = draw(st.sampled_from(KINDS))
    name = draw(names)
    if kind == "whiteout":
        name = name.rpartition("/")[0] + "/.wh." + draw(st.sampled_from(["a", "b", "d", "", ".", ".."]))
    elif kind == "opaque":
        name = name + "/.wh..wh..opq"
    # Absolute names and impossible owners end a layer at once: keep them rare enough that most
    # examples get to the entries after them.
    spec = Spec(kind, name if draw(st.integers(0, 7)) == 0 else name.lstrip("/"))
    if kind in ("symlink", "hardlink"):
        spec.link = draw(link_targets)
    if kind == "file":
        spec.data = draw(st.binary(max_size=2000))
    spec.mode = draw(st.sampled_from([0o644, 0o755, 0o4777, 0o000, 0o7777, 0o555, 0o311]))
    spec.uid, spec.gid = draw(st.sampled_from([(0, 0)] * 6 + [(1000, 1000), (65534, 65534), (2**32 - 2, 1),
                                                                (2**32 - 1, 1), (2**31, 2**31), (2**40, 5),
                                                                (-1, -1)]))
    spec.mtime = draw(st.sampled_from([0, 1_000_000, 1_000_000, -5, 2**33, 2**63, 10**20]))
    if draw(st.integers(0, 3)) == 0:
        spec.pax = draw(st.dictionaries(st.sampled_from(PAX_KEYS), st.sampled_from(PAX_VALUES), max_size=4))
    if kind == "file" and draw(st.integers(0, 5)) == 0:
        realsize = draw(st.sampled_from([0, 100, 4096, 1 << 20, 1 << 40, 1 << 62]))
        segments = draw(st.lists(st.tuples(st.integers(0, 1 << 41), st.integers(0, 600)), max_size=4))
        spec.sparse = (realsize, tuple(segments))
        spec.old_sparse = draw(st.booleans())
    return spec


@dataclass(frozen=True)
class Mutation:
    kind: str  # "field" (checksum fixed), "flip", "truncate", "dup", "insert"
    at: int  # a header index for "field", a fraction of the archive (0..1000) otherwise
    field: str = ""
    value: bytes = b""


mutations = st.one_of(
    st.builds(Mutation, st.just("field"), st.integers(0, 20), st.sampled_from(sorted(FIELDS)),
              st.sampled_from(FIELD_VALUES) | st.binary(max_size=12)),
    st.builds(Mutation, st.just("flip"), st.integers(0, 1000), value=st.binary(min_size=1, max_size=4)),
    st.builds(Mutation, st.just("truncate"), st.integers(0, 1000)),
    st.builds(Mutation, st.just("dup"), st.integers(0, 1000)),
    st.builds(Mutation, st.just("insert"), st.integers(0, 1000), value=st.binary(min_size=1, max_size=600)),
)


@dataclass(frozen=True)
class Archive:
    entries: list[Spec]
    fmt: int
    mutations: list[Mutation]
    compression: str  # "none", "gzip", "zstd"
    compressed_mutations: list[Mutation]  # applied to the compressed bytes: cut or corrupt streams

    def build(self, abs_canary: str) -> bytes:
        data = bytearray()
        for spec in self.entries:
            data += _entry_bytes(spec, self.fmt, abs_canary)
        data += bytes(2 * BLOCK)
        for mutation in self.mutations:
            data = _mutate(data, mutation)
        if self.compression == "none":
            return bytes(data)
        packed = bytearray(gzip.compress(bytes(data), mtime=0) if self.compression == "gzip"
                           else zstandard.ZstdCompressor().compress(bytes(data)))
        for mutation in self.compressed_mutations:
            if mutation.kind != "field":
                packed = _mutate(packed, mutation)
        return bytes(packed)


archives = st.builds(
    Archive,
    st.lists(specs(), max_size=8),
    st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
    st.lists(mutations, max_size=3),
    st.sampled_from(["none", "none", "gzip", "zstd"]),
    st.lists(mutations, max_size=1),
)


def _entry_bytes(spec: Spec, fmt: int, abs_canary: str) -> bytes:
    def fill(text: str) -> str:
        return text.replace(ABS_CANARY, abs_canary)

    info = tarfile.TarInfo(fill(spec.name))
    info.type = TYPEFLAG[spec.kind]
    info.linkname = fill(spec.link)
    info.mode, info.uid, info.gid, info.mtime = spec.mode, spec.uid, spec.gid, spec.mtime
    if spec.kind in ("char", "block"):
        info.devmajor, info.devminor = 1, 3
    info.pax_headers = {key: fill(value) for key, value in spec.pax.items()}
    payload = spec.data
    if spec.sparse is not None:
        return _sparse_entry(info, spec.sparse, spec.old_sparse)
    info.size = len(payload)
    for attempt in (fmt, tarfile.PAX_FORMAT):
        try:
            header = info.tobuf(attempt, "utf-8", "surrogateescape")
            break
        except (ValueError, OverflowError, UnicodeError):
            continue
    else:
        info.uid = info.gid = info.mtime = 0  # what no format can hold: keep the entry, drop the values
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    return header + payload + _padding(len(payload))


def _sparse_entry(info: tarfile.TarInfo, sparse: tuple[int, tuple[tuple[int, int], ...]], old: bool) -> bytes:
    """A GNU sparse file: PAX 1.0 (map at the start of the data) or the old GNU 'S' header."""
    realsize, segments = sparse
    body = b"".join(bytes([65 + i % 26]) * length for i, (_, length) in enumerate(segments))
    info.uid = info.gid = 0
    info.mtime = 0
    if old:
        info.type = tarfile.GNUTYPE_SPARSE
        info.size = len(body)
        info.name = info.name[:99]
        info.linkname = ""
        info.pax_headers = {}
        header = bytearray(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")[-BLOCK:])
        for i, (offset, length) in enumerate(segments[:4]):
            header[386 + 24 * i:386 + 24 * i + 24] = _octal(offset, 12) + _octal(length, 12)
        header[483:495] = _octal(realsize, 12)
        _fix_checksum(header)
        return bytes(header) + body + _padding(len(body))
    sparse_map = f"{len(segments)}\n" + "".join(f"{offset}\n{length}\n" for offset, length in segments)
    mapped = sparse_map.encode() + _padding(len(sparse_map)) + body
    info.pax_headers = {**info.pax_headers, "GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                        "GNU.sparse.name": info.name, "GNU.sparse.realsize": str(realsize)}
    info.name = "GNUSparseFile.0/" + info.name.rsplit("/", 1)[-1][:50]
    info.type = tarfile.REGTYPE
    info.size = len(mapped)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + mapped + _padding(len(mapped))


def _mutate(data: bytearray, mutation: Mutation) -> bytearray:
    if not data:
        return data
    where = len(data) * mutation.at // 1001
    if mutation.kind == "field":
        headers = [off for off in range(0, len(data) - BLOCK + 1, BLOCK) if data[off + 257:off + 262] == b"ustar"]
        if not headers:
            return data
        start = headers[mutation.at % len(headers)]
        offset, length = FIELDS[mutation.field]
        value = mutation.value[:length].ljust(length, b"\x00") if mutation.field != "typeflag" else \
            (mutation.value[:1] or b"\x00")
        block = bytearray(data[start:start + BLOCK])
        block[offset:offset + length] = value
        _fix_checksum(block)
        data[start:start + BLOCK] = block
    elif mutation.kind == "flip":
        data[where:where + len(mutation.value)] = mutation.value
    elif mutation.kind == "truncate":
        del data[where:]
    elif mutation.kind == "dup":
        start = where - where % BLOCK
        data[start:start] = data[start:start + BLOCK]
    elif mutation.kind == "insert":
        data[where:where] = mutation.value
    return data


def _fix_checksum(block: bytearray) -> None:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % (sum(block) & 0o777777)


def _octal(value: int, length: int) -> bytes:
    text = b"%o" % value
    if len(text) >= length:  # GNU base-256 for what octal cannot hold
        return b"\x80" + value.to_bytes(length - 1, "big", signed=False)[-(length - 1):]
    return text.rjust(length - 1, b"0") + b"\x00"


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


def tar_of(*infos: tuple[tarfile.TarInfo, bytes | None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A well-formed archive (for @example regressions built by hand)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for info, data in infos:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()
