"""Reading a layer tar as a stream of entries, within limits a hostile layer cannot push past.

The standard library's `tarfile` parses (PAX, GNU long names and sparse files,
ustar), in one forward pass, members forgotten once applied. This module
bounds what a layer can make that parser, and the extractor, spend:

- `TarLimits`: the size of one PAX or GNU long-name record (tarfile reads it
  whole; 1 MiB, Go's archive/tar limit too), how many such records may precede
  one entry (tarfile recurses once per record) and how much global PAX data a
  layer may carry (tarfile keeps it all); entries per layer; the length of an
  entry's name and link target (4096 bytes, Linux's PATH_MAX: no file system
  path can be longer) and the depth of its name (256 components).
- Malformed headers make tarfile raise more than `TarError`: ValueError (a
  sparse map with a non-number, an entry cut in the middle of one), IndexError
  (a GNU sparse extension block cut short), OverflowError. Those come from
  parsing the layer's bytes, so they become the layer's one-line error here,
  and only here: around `TarFile.next()`, nowhere near our own code. A bad
  or cut header after the first entry, which tarfile quietly takes for the
  end of the archive, is an error too (as in Go's archive/tar).
- Entry data is copied by `write_entry_data`, which writes only the data a
  sparse entry stores (holes are never read: a 1 EiB sparse file of no data
  costs nothing to parse and fails at `ftruncate`, not after hours of zeros).
- tarfile reads through `_ForwardOnly`, not its own stream wrapper (mode
  `r|`): to skip an entry that one reads block after block up to the size the
  header claims, past the end of the data too, so a header claiming 2**80
  bytes kept it reading nothing for ever. Here a skip stops at the end.

Every limit is named in its error, as `… over the <name> limit of N`.
"""

from __future__ import annotations

import copy
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO, Self, cast

from oci.digest import CHUNK
from oci.errors import WharfieError

__all__ = ["DEFAULT_LIMITS", "TarLimits", "entry_depth", "read_entries", "shown_name", "write_entry_data"]

_METADATA_TYPES = frozenset({tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                             tarfile.GNUTYPE_LONGLINK})
# What tarfile raises, besides TarError and EOFError, on headers it cannot make sense of.
_PARSE_ERRORS = (tarfile.TarError, EOFError, ValueError, IndexError, OverflowError)
_ZEROS = bytes(CHUNK)
_HOLE_MIN = 4096  # zero runs shorter than a block are written, not skipped
_MAX_OFFSET = (1 << 63) - 1  # off_t


@dataclass(frozen=True)
class TarLimits:
    """Resource limits of one layer; the defaults are generous for any real image."""

    path_bytes: int = 4096  # an entry's name or link target (PATH_MAX)
    depth: int = 256  # components in an entry's name, and of where it lands once symlinks are followed
    entries: int = 1_000_000  # a Debian base has 7,000; node images with vast node_modules a few 100,000
    header_record_bytes: int = 1 << 20  # one PAX or GNU long-name record
    header_chain: int = 8  # metadata records before one entry (global + PAX + long name + long link = 4)
    global_header_bytes: int = 1 << 20  # all global PAX records of the layer together


DEFAULT_LIMITS = TarLimits()


def shown_name(name: str) -> str:
    """An entry name fit for a one-line error: repr'd, and cut in the middle when very long."""
    if len(name) > 160:
        name = f"{name[:100]}…{name[-40:]} ({len(name.encode('utf-8', 'surrogateescape'))} bytes)"
    return repr(name)


def entry_depth(name: str) -> int:
    return sum(1 for part in name.split("/") if part not in ("", "."))


class _BoundedTarFile(tarfile.TarFile):
    """A TarFile carrying the limits and counters `_BoundedTarInfo` checks while tarfile parses."""

    members: list[tarfile.TarInfo]  # set by TarFile.__init__; typeshed leaves this undocumented attribute out

    def __init__(self, *args: object, limits: TarLimits, **kwargs: object) -> None:
        self.limits = limits
        self.chain = 0  # metadata records seen since the last entry
        self.global_bytes = 0
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # reads the first header already


class _BoundedTarInfo(tarfile.TarInfo):
    """Checks each header record before tarfile reads it whole or recurses into the next one."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        # After the first entry, tarfile takes a header with a bad checksum or cut short for the
        # end of the archive and drops the rest of the layer without a word. Go's archive/tar
        # (containerd, BuildKit) calls that a corrupt archive; so do we. A zero block or the end
        # of the data exactly between entries is still the end.
        try:
            return super().frombuf(buf, encoding, errors)
        # Both are tarfile's own (subclasses of HeaderError), left out of typeshed as undocumented.
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError) as exc:  # type: ignore[attr-defined]
            raise WharfieError(f"corrupt layer: {exc}") from None

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        assert isinstance(tar, _BoundedTarFile)
        limits = tar.limits
        if self.type in _METADATA_TYPES:
            tar.chain += 1
            if tar.chain > limits.header_chain:
                raise WharfieError(f"corrupt layer: more than {limits.header_chain} header records before one "
                                   f"entry, over the header chain limit of {limits.header_chain}")
            if self.size > limits.header_record_bytes:
                raise WharfieError(f"corrupt layer: a {self.size}-byte header record, over the header record "
                                   f"size limit of {limits.header_record_bytes} bytes")
            if self.type == tarfile.XGLTYPE:
                tar.global_bytes += self.size
                if tar.global_bytes > limits.global_header_bytes:
                    raise WharfieError(f"corrupt layer: {tar.global_bytes} bytes of global PAX headers, over the "
                                       f"global header size limit of {limits.global_header_bytes} bytes")
        else:
            tar.chain = 0
        # _proc_member is tarfile's private hook, absent from typeshed.
        return super()._proc_member(tar)  # type: ignore[misc, no-any-return]


class _ForwardOnly:
    """A stream as tarfile's file object: full reads, a position, and seeks forward by reading."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            data = self._raw.read()
        else:
            data = b""
            while len(data) < size and (more := self._raw.read(size - len(data))):
                data += more
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return False

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise tarfile.StreamError("seeking backwards is not allowed")
        while self._pos < pos:
            skipped = self._raw.read(min(CHUNK, pos - self._pos))
            if not skipped:
                self._pos = pos  # past the end: every later read gets nothing, and says so
                break
            self._pos += len(skipped)
        return self._pos


def read_entries(stream: BinaryIO, limits: TarLimits) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    """The entries of the uncompressed tar `stream`, each checked against `limits`.

    The TarFile is yielded too: an entry's data is read through it
    (`write_entry_data`) before the next entry is asked for.
    """
    try:
        tar = _BoundedTarFile(fileobj=_ForwardOnly(stream), mode="r", encoding="utf-8", errors="surrogateescape",
                              tarinfo=_BoundedTarInfo, limits=limits)
    except _PARSE_ERRORS as exc:
        raise WharfieError(f"corrupt layer: {_reason(exc)}") from None
    with tar:
        count = 0
        while True:
            try:
                member = tar.next()
            except _PARSE_ERRORS as exc:
                raise WharfieError(f"corrupt layer: {_reason(exc)}") from None
            if member is None:
                return
            count += 1
            if count > limits.entries:
                raise WharfieError(f"layer has more than {limits.entries} entries, over the entries per layer "
                                   f"limit of {limits.entries}")
            _check_entry(member, limits)
            yield member, tar
            # tarfile keeps every member it has read; forget them, or memory grows with the layer.
            tar.members.clear()


def _check_entry(member: tarfile.TarInfo, limits: TarLimits) -> None:
    for what, value in (("name", member.name), ("link target", member.linkname)):
        if "\x00" in value:  # a PAX record can carry one; no file name can
            raise WharfieError(f"layer entry {shown_name(member.name)}: NUL byte in its {what}")
        size = len(value.encode("utf-8", "surrogateescape"))
        if size > limits.path_bytes:
            raise WharfieError(f"layer entry {shown_name(member.name)}: {what} of {size} bytes, over the path "
                               f"length limit of {limits.path_bytes} bytes")
    depth = entry_depth(member.name)
    if depth > limits.depth:
        raise WharfieError(f"layer entry {shown_name(member.name)}: {depth} path components, over the path depth "
                           f"limit of {limits.depth}")


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{text} ({type(exc).__name__})" if text else type(exc).__name__


def write_entry_data(tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int) -> None:
    """Write a regular entry's data into `fd`, leaving holes (sparse entries keep theirs, zero blocks become
    holes too); raises WharfieError when the layer's data ends early or its sparse map makes no sense."""
    name = shown_name(member.name)
    size = member.size
    if not 0 <= size <= _MAX_OFFSET:
        raise WharfieError(f"corrupt layer: entry {name}: size {size} out of range")
    segments = [(0, size)] if member.sparse is None else _checked_sparse_map(member, name)
    stored = copy.copy(member)  # read the stored bytes in order, never the holes between them
    stored.sparse = None
    stored.size = sum(length for _, length in segments)
    source = tar.extractfile(stored)
    try:
        for offset, length in segments:
            if source is not None:
                _copy_segment(source, fd, offset, length, name)
        os.ftruncate(fd, size)  # a trailing hole still has to count in the size
    except _PARSE_ERRORS as exc:
        raise WharfieError(f"corrupt layer: entry {name}: {_reason(exc)}") from None


def _checked_sparse_map(member: tarfile.TarInfo, name: str) -> list[tuple[int, int]]:
    # typeshed declares `sparse` as bytes; tarfile keeps a list of (offset, length) pairs there.
    sparse_map = cast("list[tuple[int, int]] | None", member.sparse)
    segments = [(int(offset), int(length)) for offset, length in sparse_map or ()]
    end = 0
    for offset, length in segments:
        if offset < end or length < 0 or offset + length > member.size:
            raise WharfieError(f"corrupt layer: entry {name}: sparse map out of order or past the file's "
                               f"size ({offset}+{length}, size {member.size})")
        end = offset + length
    return segments


def _copy_segment(source: IO[bytes], fd: int, offset: int, length: int, name: str) -> None:
    done = 0
    while done < length:
        chunk = source.read(min(CHUNK, length - done))
        if not chunk:
            raise WharfieError(f"corrupt layer: entry {name}: data ended after {done} of {length} bytes")
        if not (len(chunk) >= _HOLE_MIN and _is_zero(chunk)):
            _write_all(fd, chunk, offset + done)
        done += len(chunk)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _is_zero(chunk: bytes) -> bool:
    if chunk[0] or chunk[-1]:
        return False
    return chunk == _ZEROS if len(chunk) == CHUNK else chunk.count(0) == len(chunk)
