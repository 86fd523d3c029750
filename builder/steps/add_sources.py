"""ADD's extras over COPY: local archives unpacked, remote URLs downloaded.

Docker's rules: a local tar (plain, gzip, bzip2, xz; zstd for BuildKit) is
unpacked into the destination directory; anything else is copied as COPY does.
A URL is downloaded (never unpacked), `--checksum` verified, written with mode
0600 unless --chmod says otherwise, and its mtime taken from Last-Modified.
"""

from __future__ import annotations

import bz2
import email.utils
import lzma
import os
import posixpath
import stat
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

import httpx

from builder.steps.copy import make_parents
from builder.steps.fetch_guard import FetchGuard, RefusedDestination
from layers.compress import open_decompressed, sniff_compression
from layers.extract import extract_layer
from layers.securepath import RootDir
from oci.digest import CHUNK, Digest, Hasher
from oci.errors import WharfieError

__all__ = ["archive_kind", "download", "is_url", "redact_url", "unpack_archive"]


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def archive_kind(path: Path) -> str | None:
    """The compression of a tar archive at `path`, or None when it is no tar archive."""
    if not path.is_file() or path.is_symlink():
        return None
    with open(path, "rb") as handle:
        head = handle.read(6)
    if head.startswith(b"BZh"):
        kind = "bzip2"
    elif head.startswith(b"\xfd7zXZ\x00"):
        kind = "xz"
    else:
        kind = sniff_compression(head)
    try:
        with _open_archive(path, kind) as stream:
            block = stream.read(512)
    except (OSError, EOFError, lzma.LZMAError, ValueError):
        return None
    is_tar = len(block) == 512 and (block[257:262] == b"ustar" or _valid_v7_checksum(block))
    return kind if is_tar else None


def _valid_v7_checksum(block: bytes) -> bool:
    try:
        stored = int(block[148:156].split(b"\x00")[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 256 + sum(block[156:])


@contextmanager
def _open_archive(path: Path, kind: str) -> Iterator[BinaryIO]:
    """The archive's uncompressed bytes; the file is closed too (closing the decompressor does not)."""
    decompressors = {"bzip2": bz2.BZ2File, "xz": lzma.LZMAFile}
    with open(path, "rb") as raw:
        opener = decompressors.get(kind)
        stream = cast(BinaryIO, opener(raw)) if opener is not None else open_decompressed(raw, kind)
        with stream:
            yield stream


def unpack_archive(path: Path, kind: str, dest: Path, *, owner: tuple[int, int] | None = None,
                   rootfs: Path | None = None) -> None:
    """Unpack the archive into `dest` with the layer extractor's path safety.

    As BuildKit's file backend (unpack) does: `dest` and its missing parents are
    made 0755 and owned by `owner` (ADD --chown; root without it) before the
    archive is read, so the archive's own "./" entry does not change them; with
    `owner` every extracted entry is owned by it too, else entries keep the
    archive's owners. `.wh.*` names are ordinary files in an archive (moby's
    archive.Untar), not whiteouts. `rootfs` (the image root holding `dest`)
    is needed to own created parents; without it they are made root's.
    """
    uid, gid = owner or (0, 0)
    if rootfs is not None:
        make_parents(rootfs, dest, uid=uid, gid=gid)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
    if not os.path.lexists(dest):
        dest.mkdir()
        os.chown(dest, uid, gid)
        os.chmod(dest, 0o755)
    unowned: dict[str, tuple[int, int]] | None = {} if owner is not None else None
    with _open_archive(path, kind) as stream:
        extract_layer(stream, dest, compression="none", whiteouts=False,
                      same_owner=False if owner is not None else None, owners=unowned)
    if unowned:
        _chown_entries(dest, unowned, uid, gid)


def _chown_entries(dest: Path, entries: Iterable[str], uid: int, gid: int) -> None:
    """Give every extracted entry (named as the extractor resolved it) to uid:gid, by descriptor:
    a link the archive planted leads no chown outside `dest`."""
    with RootDir(dest) as root:
        for rel in entries:
            parts = rel.split("/")
            try:
                parent_fd, _ = root.parent(parts, create=False, name=rel)
                st = os.stat(parts[-1], dir_fd=parent_fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                continue  # a later entry of the archive replaced it
            os.chown(parts[-1], uid, gid, dir_fd=parent_fd, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o6000:  # chown cleared setuid/setgid
                os.chmod(parts[-1], stat.S_IMODE(st.st_mode), dir_fd=parent_fd)


def redact_url(url: str) -> str:
    """`url` without its user:password part, for history, cache labels, logs and errors.

    Never raises: a URL that does not parse loses everything up to the last '@' of its authority all the same.
    """
    if not is_url(url):
        return url
    scheme, _, rest = url.partition("://")
    end = next((i for i, ch in enumerate(rest) if ch in "/?#"), len(rest))
    authority = rest[:end]
    if "@" not in authority:
        return url
    return f"{scheme}://{authority.rpartition('@')[2]}{rest[end:]}"


def _check_url(url: str, shown: str, what: str) -> httpx.URL:
    """The URL as httpx will send it, or a one-line error for one that does not parse (no credentials in it)."""
    try:
        parsed = httpx.URL(url)
        urllib.parse.urlsplit(url).port  # noqa: B018 - a port out of range raises only when read
    except (httpx.InvalidURL, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) and url == shown else "malformed"
        raise WharfieError(f"{what}: invalid URL {shown}: {reason}") from None
    if not parsed.host:
        raise WharfieError(f"{what}: invalid URL {shown}: no host")
    return parsed


def download(url: str, directory: Path, *, checksum: str | None, what: str, guard: FetchGuard | None = None) -> Path:
    """Fetch `url` into `directory`; returns the file, named after the URL's last path segment.

    `guard` decides which hosts may be reached (builder/steps/fetch_guard.py): by default none of the host's own.
    """
    shown = redact_url(url)
    _check_url(url, shown, what)
    expected = Digest.parse(checksum) if checksum is not None else None  # a bad --checksum fails before the download
    name = posixpath.basename(posixpath.normpath(urllib.parse.urlsplit(url).path or "/"))
    target = directory / (name if name not in ("", ".", "..", "/") else "download")  # `/a/..` names no file
    hasher = Hasher()
    guard = guard or FetchGuard()
    try:
        with guard.client(url, timeout=60) as client, client.stream("GET", url) as response:
            if response.status_code != 200:
                raise WharfieError(f"{what}: downloading {shown} failed: HTTP {response.status_code}")
            with open(target, "wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
            modified = response.headers.get("Last-Modified")
    except httpx.HTTPError as exc:
        raise WharfieError(f"{what}: downloading {shown} failed: {redact_url(str(exc))}") from None
    except RefusedDestination as exc:
        raise WharfieError(f"{what} {shown}: {exc}") from None
    if expected is not None and hasher.digest() != expected:
        raise WharfieError(f"{what}: checksum of {shown} is {hasher.digest()}, expected {checksum}")
    os.chmod(target, 0o600)
    if modified:
        try:
            stamp = email.utils.parsedate_to_datetime(modified).timestamp()
        except (TypeError, ValueError):
            return target  # a malformed Last-Modified: keep the download's own mtime
        os.utime(target, (stamp, stamp))
    return target
