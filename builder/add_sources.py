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
import urllib.parse
from pathlib import Path
from typing import BinaryIO

import httpx

from layers.compress import open_decompressed, sniff_compression
from layers.extract import extract_layer
from oci.digest import CHUNK, Digest, Hasher
from oci.errors import WharfieError

__all__ = ["is_url", "archive_kind", "unpack_archive", "download"]


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


def _open_archive(path: Path, kind: str) -> BinaryIO:
    raw = open(path, "rb")
    if kind == "bzip2":
        return bz2.BZ2File(raw)  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    return open_decompressed(raw, kind)


def unpack_archive(path: Path, kind: str, dest: Path) -> None:
    """Unpack the archive into `dest` with the layer extractor's path safety."""
    dest.mkdir(parents=True, exist_ok=True)
    with _open_archive(path, kind) as stream:
        extract_layer(stream, dest, compression="none", whiteouts=False)


def download(url: str, directory: Path, *, checksum: str | None, what: str) -> Path:
    """Fetch `url` into `directory`; returns the file, named after the URL's last path segment."""
    name = posixpath.basename(urllib.parse.urlparse(url).path) or "download"
    target = directory / name
    hasher = Hasher()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
            if response.status_code != 200:
                raise WharfieError(f"{what}: downloading {url} failed: HTTP {response.status_code}")
            with open(target, "wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
            modified = response.headers.get("Last-Modified")
    except httpx.HTTPError as exc:
        raise WharfieError(f"{what}: downloading {url} failed: {exc}") from None
    if checksum is not None and hasher.digest() != Digest.parse(checksum):
        raise WharfieError(f"{what}: checksum of {url} is {hasher.digest()}, expected {checksum}")
    os.chmod(target, 0o600)
    if modified:
        stamp = email.utils.parsedate_to_datetime(modified).timestamp()
        os.utime(target, (stamp, stamp))
    return target
